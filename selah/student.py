"""The student: any Hugging Face backbone, pooled over the whole lyric, with one head per field.

Lyrics longer than one window are cut into overlapping windows (`stride` tokens of overlap), never
truncated. The text windowed is `song_text` (title, artist, lyrics), or for gpt-oss (`prompt:
harmony`) the song's harmony chat prompt with the pinned date (`selah.gptoss.harmony_prompt`).
Encoders pool by masked mean over every token of every window (so the song vector is the mean
over the whole lyric); decoders take each window's last real token and average the windows.
Heads follow the label schema (`HEAD_SPECS`); `concern_severity` holds one 4-way severity per
concern category and is trained only where the concern is present.

A float student is saved as a folder: `student.json` (backbone config, pooling, windows, heads,
metadata), `model.safetensors` and the tokenizer files. `training.quantize.export` turns it into the
INT8 checkpoint the service loads.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from selah import schema

STUDENT_FORMAT = "selah-student-1"
PROMPTS = ("plain", "harmony")


@dataclass(frozen=True)
class HeadSpec:
    """One output head: `kind` is categorical, multilabel, regression or grouped (per group)."""

    name: str
    kind: str
    labels: tuple[str, ...]
    groups: int = 1

    @property
    def width(self) -> int:
        """Output units of the head."""
        return len(self.labels) * self.groups


HEAD_SPECS: tuple[HeadSpec, ...] = (
    HeadSpec("verdict", "categorical", schema.VERDICTS),
    HeadSpec("score", "regression", ("score",)),
    HeadSpec("themes", "multilabel", schema.THEME_NAMES),
    HeadSpec("concerns", "multilabel", schema.CONCERN_CATEGORIES),
    HeadSpec("concern_severity", "grouped", schema.SEVERITIES, len(schema.CONCERN_CATEGORIES)),
    HeadSpec("sentiment", "categorical", schema.SENTIMENT_LABELS),
    HeadSpec("emotion", "categorical", schema.EMOTION_LABELS),
    HeadSpec("safety", "categorical", schema.SAFETY_LABELS),
    HeadSpec("formation_risk", "categorical", schema.FORMATION_RISKS),
    HeadSpec("narrative_voice", "categorical", schema.NARRATIVE_VOICES),
    HeadSpec("lament_filter", "categorical", ("not_applied", "applied")),
)


def song_text(title: str, artist: str, lyrics: str) -> str:
    """What the student reads: title, artist, then the lyrics (a lone surrogate, which the
    tokenizer cannot encode, becomes U+FFFD)."""
    text = f"{title}\n{artist}\n\n{lyrics}"
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


class Featurizer:
    """Tokenises songs into overlapping windows and remembers which song each window came from."""

    def __init__(self, tokenizer, max_length: int = 256, stride: int = 32, prompt: str = "plain"):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("the student needs a fast tokenizer (windowing uses offsets)")
        if stride >= max_length // 2:
            raise ValueError(f"stride {stride} must be under half of max_length {max_length}")
        if prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {', '.join(PROMPTS)}, got {prompt!r}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.stride = stride
        self.prompt = prompt
        if tokenizer.pad_token is None:  # decoders often have none; pad with EOS (masked out)
            tokenizer.pad_token = tokenizer.eos_token

    def texts(self, songs: Sequence[dict]) -> list[str]:
        """The text the student reads for each `{title, artist, lyrics}` song."""
        if self.prompt == "harmony":
            from selah.gptoss import harmony_prompt

            return [harmony_prompt(self.tokenizer, s) for s in songs]
        return [song_text(s["title"], s["artist"], s["lyrics"]) for s in songs]

    def __call__(self, songs: Sequence[dict]) -> dict:
        """`{input_ids [W, L], attention_mask [W, L], song_index [W], n_songs}` for W windows."""
        texts = self.texts(songs)
        encoded = self.tokenizer(
            texts, truncation=True, max_length=self.max_length, stride=self.stride,
            return_overflowing_tokens=True, padding=True, return_tensors="pt",
        )
        return {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "song_index": encoded["overflow_to_sample_mapping"].long(),
            "n_songs": len(texts),
        }


class StudentModel(nn.Module):
    """Backbone + pooling + heads. `forward` returns `{head name: logits [n_songs, width]}`."""

    def __init__(self, backbone: nn.Module, heads: Sequence[HeadSpec] = HEAD_SPECS,
                 pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        if pooling not in ("mean", "last_token"):
            raise ValueError(f"pooling must be mean or last_token, got {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        self.head_specs = tuple(heads)
        hidden = backbone.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({spec.name: nn.Linear(hidden, spec.width) for spec in heads})

    def window_terms(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     states: bool = False) -> tuple[torch.Tensor, ...]:
        """Each window's pooling terms from the backbone (float32): `(total [W, hidden],
        count [W, 1])`, the sum over its real tokens and their number for `mean`, its last real
        token and 1 for `last_token`; with `states`, the token states [W, L, hidden] they were
        computed from come third (`selah.evidence` reads them)."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden.float()  # a bf16 backbone (gpt-oss) pools in float32, like the heads
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "mean":
            terms = (hidden * mask).sum(1), mask.sum(1)
        else:
            last = attention_mask.sum(1).clamp(min=1) - 1  # right padding: last real token
            terms = (hidden[torch.arange(hidden.size(0), device=hidden.device), last],
                     torch.ones(hidden.size(0), 1, dtype=hidden.dtype, device=hidden.device))
        return (*terms, hidden) if states else terms

    @staticmethod
    def pool(totals: torch.Tensor, counts: torch.Tensor, song_index: torch.Tensor,
             n_songs: int) -> torch.Tensor:
        """Song vectors [n_songs, hidden]: each song's window terms added up in window order,
        divided by its count (mean: over every token of the lyric; last_token: over windows)."""
        sums = torch.zeros(n_songs, totals.size(-1), dtype=totals.dtype, device=totals.device)
        sums.index_add_(0, song_index, totals)
        number = torch.zeros(n_songs, 1, dtype=totals.dtype, device=totals.device)
        number.index_add_(0, song_index, counts)
        return sums / number.clamp(min=1)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               song_index: torch.Tensor, n_songs: int) -> torch.Tensor:
        """Song vectors [n_songs, hidden] (float32) from windows [W, L]."""
        totals, counts = self.window_terms(input_ids, attention_mask)
        return self.pool(totals, counts, song_index, n_songs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                song_index: torch.Tensor, n_songs: int) -> dict[str, torch.Tensor]:
        """Logits per head for each song."""
        pooled = self.dropout(self.encode(input_ids, attention_mask, song_index, n_songs))
        return {name: head(pooled).float() for name, head in self.heads.items()}


def default_pooling(config) -> str:
    """`last_token` for decoder-only backbones, `mean` for encoders."""
    from selah.gptoss import is_gptoss

    architectures = " ".join(getattr(config, "architectures", None) or [])
    decoder = getattr(config, "is_decoder", False) or "CausalLM" in architectures or \
        is_gptoss(config)
    return "last_token" if decoder else "mean"


def build_student(backbone: str, pooling: str = "auto", heads: Sequence[HeadSpec] = HEAD_SPECS,
                  dropout: float = 0.1, **load_kwargs):
    """A student on a pretrained backbone (local folder or hub id) and its tokenizer; gpt-oss
    loads through `selah.gptoss.load_backbone` (no LM head, eager attention, MXFP4 -> bf16)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from selah import gptoss

    tokenizer = AutoTokenizer.from_pretrained(backbone, **load_kwargs)
    config = AutoConfig.from_pretrained(backbone, **load_kwargs)
    if gptoss.is_gptoss(config):
        model = gptoss.load_backbone(backbone, config, **load_kwargs)
    else:
        model = AutoModel.from_pretrained(backbone, **load_kwargs)
    pooling = default_pooling(model.config) if pooling == "auto" else pooling
    return StudentModel(model, heads, pooling, dropout), tokenizer


def save_student(model: StudentModel, tokenizer, folder: str | Path, featurizer: Featurizer,
                 meta: dict | None = None, state: dict | None = None) -> Path:
    """Write a float student folder (`student.json`, `model.safetensors`, tokenizer files).

    `state` is the plain state dict to store (default `model.state_dict()`); a student trained
    with LoRA adapters passes `training.distill.adapters.plain_state_dict(model)`, the adapters
    merged into the weights they adapt, so the folder is always a plain student."""
    from safetensors.torch import save_file

    from selah.gptoss import config_dict

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict() if state is None else state
    adapted = sorted(k for k in state if ".lora_" in k or ".base_layer." in k)
    if adapted:  # a folder with PEFT names would not load into a plain student
        raise ValueError(f"the state dict holds LoRA adapters ({adapted[0]}, ...); pass the "
                         "merged weights, training.distill.adapters.plain_state_dict(model)")
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(state, str(folder / "model.safetensors"))
    tokenizer.save_pretrained(folder)
    description = {
        "format": STUDENT_FORMAT,
        "schema_version": schema.SCHEMA_VERSION,
        "backbone_config": config_dict(model.backbone.config),
        "pooling": model.pooling,
        "prompt": featurizer.prompt,
        "max_length": featurizer.max_length,
        "stride": featurizer.stride,
        "heads": [asdict(spec) for spec in model.head_specs],
        "meta": meta or {},
    }
    (folder / "student.json").write_text(json.dumps(description, indent=2, sort_keys=True))
    return folder


def student_from_description(description: dict) -> StudentModel:
    """An untrained student with the architecture a `student.json` describes (no weights)."""
    from transformers import AutoConfig, AutoModel

    from selah import gptoss

    values = dict(description["backbone_config"])
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    if gptoss.is_gptoss(config):
        dtype = getattr(torch, str(values.get("dtype") or "float32").replace("torch.", ""))
        backbone = gptoss.backbone_from_config(config, dtype)
    else:
        backbone = AutoModel.from_config(config)
    heads = [HeadSpec(h["name"], h["kind"], tuple(h["labels"]), h["groups"])
             for h in description["heads"]]
    return StudentModel(backbone, heads, description["pooling"], dropout=0.0)


def load_student(folder: str | Path):
    """A float student folder back as `(model, featurizer, description)`, in eval mode."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    folder = Path(folder)
    description = json.loads((folder / "student.json").read_text())
    if description.get("format") != STUDENT_FORMAT:
        raise ValueError(f"{folder} is not a {STUDENT_FORMAT} folder")
    model = student_from_description(description)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    featurizer = Featurizer(tokenizer, description["max_length"], description["stride"],
                            description.get("prompt", "plain"))
    return model.eval(), featurizer, description
