"""`HuggingFaceAnalyzer`: the legacy 4-model system Selah replaces (backends.md, section 1).

Four sequence classifiers, each a local folder or hub id from its setting: sentiment
(`HF_SENTIMENT_MODEL`, RoBERTa-base), safety (`HF_SAFETY_MODEL`, toxic-bert), emotion
(`HF_EMOTION_MODEL`, DistilRoBERTa) and zero-shot themes (`HF_THEMES_MODEL`, BART-large MNLI). Each
loads as `AutoTokenizer` + `AutoModelForSequenceClassification` on `HF_DEVICE`; a model that cannot
load, or whose labels (its config's `id2label`) are not the ones its role needs, refuses the whole
backend with `AnalyzerUnavailable` naming the setting and the path.

Inference does what the legacy pipelines did: all class scores, softmax (sigmoid for a
multi-label config, as the `text-classification` pipeline chooses), truncation at the model's
maximum length, 8 sequences a forward pass on CUDA and 4 elsewhere. Zero-shot is one NLI pass per
candidate label (premise the song, hypothesis "This example is {label}."), then a softmax over the
36 entailment logits (single-label mode). At most `ANALYSIS_MAX_CONCURRENCY` batches run the
models at once. Everything after the models is `huggingface_rules`.

torch and transformers are imported inside functions: `import app` stays light.
"""

import hashlib
import inspect
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from selah import schema
from selah.analyzers.base import AnalyzerUnavailable, BaseAnalyzer

SETTINGS = {"sentiment": "HF_SENTIMENT_MODEL", "safety": "HF_SAFETY_MODEL",
            "emotion": "HF_EMOTION_MODEL", "themes": "HF_THEMES_MODEL"}
# Labels a role needs (by name, any order); generic LABEL_i names are read in this order.
ROLE_LABELS = {
    "sentiment": schema.SENTIMENT_LABELS,
    "emotion": schema.EMOTION_LABELS,
    "safety": ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"),
}
BATCH_SIZES = {"cuda": 8}
DEFAULT_BATCH_SIZE = 4
INSTALL_HINT = "pip install -e . (torch, transformers)"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# Models whose position ids start after the padding index (max length = positions - pad - 1).
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert")


@dataclass(frozen=True)
class Source:
    """Where one role's model comes from: the setting, its value, and the local folder if any."""

    role: str
    setting: str
    value: str
    path: Path | None

    def describe(self) -> str:
        """`HF_X_MODEL=value`, for messages."""
        return f"{self.setting}={self.value!r}"


def model_source(config: Mapping[str, Any], role: str) -> Source:
    """The source of `role`'s model: a path (absolute, ./, ~ or existing) is a local folder, any
    other value a hub id. `AnalyzerUnavailable` when unset, malformed, or a folder with no model."""
    setting = SETTINGS[role]
    value = str(config.get(setting) or "").strip()
    if not value:
        raise AnalyzerUnavailable(f"{setting} is not set: give a local model folder or a hub id")
    path = Path(value).expanduser()
    if path.is_absolute() or value.startswith((".", "~")) or path.exists():
        if not path.is_dir():
            raise AnalyzerUnavailable(f"{setting}={value!r}: the {role} model folder {path} "
                                      "does not exist")
        if not (path / "config.json").is_file():
            raise AnalyzerUnavailable(f"{setting}={value!r}: the {role} model folder {path} has "
                                      "no config.json (save the model with save_pretrained)")
        return Source(role, setting, value, path)
    if not HUB_ID.match(value):
        raise AnalyzerUnavailable(f"{setting}={value!r} is neither a folder nor a hub id")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") \
            and not _cached(value):
        raise AnalyzerUnavailable(f"{setting}={value!r}: HF_HUB_OFFLINE is set and the model is "
                                  "not in the local hub cache; point the setting at a folder")
    return Source(role, setting, value, None)


def _cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def resolve_device(requested: str | None) -> str:
    """The torch device for `HF_DEVICE` (auto: cuda, then mps, then cpu)."""
    from selah.runtime import DeviceUnavailable
    from selah.runtime import resolve_device as resolve

    try:
        return resolve(requested, "HF_DEVICE")
    except DeviceUnavailable as exc:
        raise AnalyzerUnavailable(str(exc)) from None


def _concurrency(config: Mapping[str, Any]) -> int:
    value = config.get("ANALYSIS_MAX_CONCURRENCY")
    value = 2 if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AnalyzerUnavailable(
            f"ANALYSIS_MAX_CONCURRENCY must be a positive integer, got {value!r}")
    return value


@dataclass
class LoadedModel:
    """One loaded classifier: its tokenizer and model, labels in logit order, the longest input,
    whether its scores are sigmoids, and (themes only) the entailment logit's index."""

    source: str
    tokenizer: Any
    model: Any
    labels: tuple[str, ...]
    max_length: int
    multi_label: bool = False
    entailment: int | None = None

    def logits(self, texts: list[str], pairs: list[str] | None = None, device: str = "cpu"):
        """Float logits `[len(texts), n_labels]` of one padded batch (pairs: NLI hypotheses)."""
        # split_special_tokens: a lyric that spells "</s>" stays text (BART's head counts eos).
        encoded = self.tokenizer(texts, pairs, padding=True, max_length=self.max_length,
                                 truncation="only_first" if pairs else True, return_tensors="pt",
                                 split_special_tokens=True)
        accepted = inspect.signature(self.model.forward).parameters
        inputs = {k: v.to(device) for k, v in encoded.items() if k in accepted}
        if "use_cache" in accepted:  # BART would build a decoder cache it never reads
            inputs["use_cache"] = False
        return self.model(**inputs).logits.float().cpu()


def role_labels(role: str, names: list[str]) -> tuple[str, ...]:
    """The model's labels, lower-cased, checked against what `role` needs."""
    labels = [str(name).strip().lower() for name in names]
    needed = ROLE_LABELS.get(role)
    if needed and len(labels) == len(needed) and all(re.fullmatch(r"label_\d+", n)
                                                     for n in labels):
        labels = list(needed)
    if role in ("sentiment", "emotion") and sorted(labels) != sorted(needed):
        raise ValueError(f"labels {labels} are not the {role} labels {list(needed)}")
    if role == "safety" and not any("toxic" in label for label in labels):
        raise ValueError(f"labels {labels} have no toxic label")
    if role == "themes" and not any(label.startswith("entail") for label in labels):
        raise ValueError(f"labels {labels} have no entailment label (an NLI model is needed)")
    return tuple(labels)


def max_length(tokenizer, config) -> int:
    """The longest input the model takes: its position table (less RoBERTa's offset) and the
    tokenizer's own limit, whichever is smaller."""
    limits = []
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        offset = (config.pad_token_id or 0) + 1 if config.model_type in OFFSET_POSITIONS else 0
        limits.append(positions - offset)
    if 0 < (tokenizer.model_max_length or 0) < 1_000_000:
        limits.append(tokenizer.model_max_length)
    return min(limits) if limits else 512


def load_model(source: Source, device: str) -> LoadedModel:
    """Tokenizer and classifier of one role on `device`, in eval mode; `AnalyzerUnavailable`
    naming the setting and path when anything fails."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    where = str(source.path) if source.path else source.value
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForSequenceClassification.from_pretrained(where).to(device).eval()
        config = model.config
        labels = role_labels(source.role, [config.id2label[i] for i in range(config.num_labels)])
    except Exception as exc:  # noqa: BLE001 - any load failure refuses the backend, with why
        raise AnalyzerUnavailable(f"{source.describe()}: cannot load the {source.role} model "
                                  f"from {where} ({type(exc).__name__}: {exc})") from None
    multi = config.problem_type == "multi_label_classification" or config.num_labels == 1
    entail = next((i for i, n in enumerate(labels) if n.startswith("entail")), None)
    return LoadedModel(source.value, tokenizer, model, labels, max_length(tokenizer, config),
                       multi, entail if source.role == "themes" else None)


class HuggingFaceAnalyzer(BaseAnalyzer):
    """The legacy 4-model analyzer (backend name `huggingface`)."""

    backend: ClassVar[str] = "huggingface"

    def __init__(self, models: dict[str, LoadedModel], device: str, max_concurrency: int = 2):
        missing = set(SETTINGS) - set(models)
        if missing:
            raise ValueError(f"models missing for {sorted(missing)}")
        self.models, self.device = models, device
        self.batch_size = BATCH_SIZES.get(device, DEFAULT_BATCH_SIZE)
        self.max_concurrency = max_concurrency
        self._semaphore = threading.BoundedSemaphore(max_concurrency)
        sources = json.dumps({role: models[role].source for role in SETTINGS})
        self.model_version = "huggingface-" + hashlib.sha256(sources.encode()).hexdigest()[:12]

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def resolve(cls, config: Mapping[str, Any]) -> tuple[dict[str, Source], str, int]:
        """Sources of the four models, the device and the concurrency; imports checked, no
        weights read. `AnalyzerUnavailable` says what is wrong."""
        sources = {role: model_source(config, role) for role in SETTINGS}
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as exc:
            raise AnalyzerUnavailable(
                f"the huggingface backend needs torch and transformers ({exc}); {INSTALL_HINT}"
            ) from None
        return sources, resolve_device(config.get("HF_DEVICE")), _concurrency(config)

    @classmethod
    def preflight_config(cls, config: Mapping[str, Any]) -> tuple[bool, str]:
        """`(ok, message)` of `resolve`: can these settings load? No weights are read."""
        try:
            sources, device, _ = cls.resolve(config)
        except AnalyzerUnavailable as exc:
            return False, str(exc)
        listed = ", ".join(f"{s.role} {s.value}" for s in sources.values())
        return True, f"4 models ready to load on {device}: {listed}"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "HuggingFaceAnalyzer":
        """Resolve the settings and load the four models; the first that fails refuses all."""
        sources, device, concurrency = cls.resolve(config)
        models = {role: load_model(source, device) for role, source in sources.items()}
        return cls(models, device, concurrency)

    # -- serving ---------------------------------------------------------------------------------

    def info(self) -> dict:
        """Backend, version, the four models and how they run."""
        return {"backend": self.backend, "model_version": self.model_version,
                "models": [f"{role}: {self.models[role].source}" for role in SETTINGS],
                "device": self.device, "batch_size": self.batch_size,
                "max_concurrency": self.max_concurrency}

    def snapshot(self) -> dict:
        """What produced a result: backend, the four models, device (no checkpoint hash)."""
        return {"backend": self.backend, "model_version": self.model_version,
                "model_id": " + ".join(self.models[role].source for role in SETTINGS),
                "models": {role: self.models[role].source for role in SETTINGS},
                "checkpoint_sha256": None, "quantization": "none",
                "schema_version": schema.SCHEMA_VERSION, "device": self.device}

    def _classify(self, role: str, texts: list[str]) -> list[dict]:
        """`{label: probability}` per text from one classifier, `batch_size` texts a pass."""
        import torch

        loaded, rows = self.models[role], []
        for start in range(0, len(texts), self.batch_size):
            logits = loaded.logits(texts[start:start + self.batch_size], device=self.device)
            probs = torch.sigmoid(logits) if loaded.multi_label else torch.softmax(logits, -1)
            rows.extend(dict(zip(loaded.labels, row)) for row in probs.tolist())
        return rows

    def _zero_shot(self, premises: list[str]) -> list[dict]:
        """`{candidate label: probability}` per premise: 36 NLI passes, softmax over entailment."""
        import torch

        from selah.analyzers.huggingface_rules import (
            CANDIDATE_LABELS,
            HYPOTHESIS,
        )

        loaded = self.models["themes"]
        pairs = [(p, HYPOTHESIS.format(label)) for p in premises for label in CANDIDATE_LABELS]
        entailment = []
        for start in range(0, len(pairs), self.batch_size):
            batch = pairs[start:start + self.batch_size]
            logits = loaded.logits([p for p, _ in batch], [h for _, h in batch], self.device)
            entailment.append(logits[:, loaded.entailment])
        scores = torch.cat(entailment).view(len(premises), len(CANDIDATE_LABELS)).softmax(-1)
        return [dict(zip(CANDIDATE_LABELS, row)) for row in scores.tolist()]

    def _analyze_batch(self, items: list[tuple[str, str, str, int | None]]) -> list:
        import torch

        from selah.analyzers.huggingface_rules import (
            ModelOutputs,
            preprocess,
            render,
            zero_shot_text,
        )

        texts = [preprocess(t, a, lyr) for t, a, lyr, _ in items]
        started = time.perf_counter()
        with self._semaphore, torch.inference_mode():
            sentiment = self._classify("sentiment", texts)
            safety = self._classify("safety", texts)
            emotion = self._classify("emotion", texts)
            themes = self._zero_shot([zero_shot_text(text) for text in texts])
        elapsed = (time.perf_counter() - started) / len(items)
        snapshot = self.snapshot()
        return [render(t, a, lyr, user, ModelOutputs(*outputs), snapshot, elapsed)
                for (t, a, lyr, user), *outputs in zip(items, sentiment, emotion, safety, themes)]
