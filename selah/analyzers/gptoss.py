"""`GPTOSSChristianAnalyzer`: the distilled student served from an INT8 checkpoint folder.

The folder (`training.quantize.export` writes it; format in `selah.checkpoint`) is
`GPTOSS_MODEL_PATH`, or the embedded default `selah/checkpoints/default/`. Loading resolves the
settings once (`resolve`: folder, manifest read and checked, device, batch size) and loads from that
spec, hashing every file against the manifest; when anything is off it refuses, naming the file,
and the service answers 503 and never makes up a result. Songs are analysed `GPTOSS_BATCH_SIZE` at
a time under `torch.inference_mode`; the same song gives the same result alone or in any batch
(see `selah.inference`). The head outputs become an `AnalysisResult` in `gptoss_render`.

torch and transformers are imported inside methods: `import selah.analyzers` stays light, and a
service configured for another backend never loads them.
"""

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from selah.analyzers.base import AnalyzerUnavailable, BaseAnalyzer
from selah.checkpoint import MANIFEST, Checkpoint, CheckpointError, open_checkpoint
from selah.runtime import TORCH_THREAD, HeapTrimmer

# Where the embedded default checkpoint lives inside the package.
EMBEDDED_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "default"
DEFAULT_BATCH_SIZE = 64
log = logging.getLogger(__name__)
INSTALL_HINT = "pip install -e . (torch, transformers, safetensors, pythonbible)"


def checkpoint_path(config: Mapping[str, Any]) -> Path:
    """The checkpoint folder: `GPTOSS_MODEL_PATH`, or the embedded default."""
    configured = config.get("GPTOSS_MODEL_PATH") or ""
    return Path(configured).expanduser() if configured else EMBEDDED_CHECKPOINT


def _source(config: Mapping[str, Any]) -> str:
    return "GPTOSS_MODEL_PATH" if config.get("GPTOSS_MODEL_PATH") else "embedded default"


def resolve_device(requested: str | None) -> str:
    """The torch device for `GPTOSS_DEVICE` (`selah.runtime.resolve_device`: auto is cuda, then
    mps, then cpu); `AnalyzerUnavailable` when the device asked for is not available."""
    from selah.runtime import DeviceUnavailable
    from selah.runtime import resolve_device as resolve

    try:
        return resolve(requested, "GPTOSS_DEVICE")
    except DeviceUnavailable as exc:
        raise AnalyzerUnavailable(str(exc)) from None


def _batch_size(config: Mapping[str, Any]) -> int:
    value = config.get("GPTOSS_BATCH_SIZE") or DEFAULT_BATCH_SIZE
    if not isinstance(value, int) or value < 1:
        raise AnalyzerUnavailable(f"GPTOSS_BATCH_SIZE must be a positive integer, got {value!r}")
    return value


def _evidence(config: Mapping[str, Any]) -> bool:
    value = config.get("GPTOSS_EVIDENCE", True)
    if not isinstance(value, bool):
        raise AnalyzerUnavailable(f"GPTOSS_EVIDENCE must be true or false, got {value!r}")
    return value


def _quote_index():
    from selah.quotes import default_index

    try:
        return default_index()
    except Exception as exc:  # noqa: BLE001 - no translation readable: results quote nothing
        log.warning("scripture quotes are off: %s: %s", type(exc).__name__, exc)
        return None


def _runtime(config: Mapping[str, Any], device: str):
    from selah.runtime import choose_runtime

    try:
        return choose_runtime(config.get("GPTOSS_RUNTIME"), device)
    except ValueError as exc:
        raise AnalyzerUnavailable(str(exc)) from None


@dataclass(frozen=True)
class LoadSpec:
    """Everything a load needs, resolved once from the settings: the opened checkpoint (manifest
    read and checked, with its hash), where it came from, the device, the batch size, the
    runtime (`selah.runtime.RuntimeChoice`) and whether results carry evidence
    (`GPTOSS_EVIDENCE`: the lines behind each theme and concern, the scripture quoted)."""

    checkpoint: Checkpoint
    source: str
    device: str
    batch_size: int
    runtime: Any = None
    evidence: bool = True

    @property
    def model_version(self) -> str:
        """`gptoss-` and the first 12 hex digits of the manifest's SHA-256."""
        return "gptoss-" + self.checkpoint.manifest_sha256[:12]


class GPTOSSChristianAnalyzer(BaseAnalyzer):
    """The distilled single-model analyzer (backend name `gptoss`)."""

    backend: ClassVar[str] = "gptoss"

    def __init__(self, model, featurizer, manifest: dict, checkpoint_sha256: str, path: Path,
                 device: str, batch_size: int = DEFAULT_BATCH_SIZE, runtime=None,
                 evidence: bool = True):
        from selah.runtime import choose_runtime

        self.model, self.featurizer, self.manifest = model, featurizer, manifest
        self.evidence = evidence
        # The scripture-quote index (`selah.quotes`), built or read from its cache once per
        # process; None when evidence is off or no pythonbible translation could be read.
        self.quotes = _quote_index() if evidence else None
        self.checkpoint_sha256, self.path = checkpoint_sha256, Path(path)
        self.device, self.batch_size = device, batch_size
        # The caller applied this runtime to `model` (`load` does); the default names what an
        # INT8 student as loaded runs as on `device`.
        self.runtime = runtime or choose_runtime("int8", device)
        self.model_version = "gptoss-" + checkpoint_sha256[:12]
        self.heap = HeapTrimmer()
        self._context = {
            "scripture": manifest.get("scripture") or {},
            "decoding": manifest.get("decoding") or {},
            "snapshot": self.snapshot(),
        }

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def resolve(cls, config: Mapping[str, Any]) -> LoadSpec:
        """The load spec for these settings: folder, manifest and file sizes checked, imports,
        device and batch size; no weights. `AnalyzerUnavailable` says what is wrong."""
        path = checkpoint_path(config)
        if not (path / MANIFEST).is_file():
            raise AnalyzerUnavailable(
                f"no GPTOSS checkpoint at {path} ({_source(config)}): {MANIFEST} is missing. "
                "Export a student checkpoint (python -m training.quantize.export) and point "
                "GPTOSS_MODEL_PATH at its folder.")
        try:
            checkpoint = open_checkpoint(path)
        except CheckpointError as exc:
            raise AnalyzerUnavailable(
                f"GPTOSS checkpoint refused ({_source(config)}): {exc}") from None
        try:
            import safetensors  # noqa: F401
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as exc:
            raise AnalyzerUnavailable(
                f"the gptoss backend needs torch and transformers ({exc}); {INSTALL_HINT}"
            ) from None
        device = resolve_device(config.get("GPTOSS_DEVICE"))
        return LoadSpec(checkpoint, _source(config), device, _batch_size(config),
                        _runtime(config, device), _evidence(config))

    @classmethod
    def preflight_config(cls, config: Mapping[str, Any]) -> tuple[bool, str]:
        """`(ok, message)` of `resolve`: can these settings load? No weights are read."""
        try:
            spec = cls.resolve(config)
        except AnalyzerUnavailable as exc:
            return False, str(exc)
        return True, (f"checkpoint {spec.model_version} at {spec.checkpoint.path} ready to load "
                      f"on {spec.device} ({spec.runtime.name} runtime)")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "GPTOSSChristianAnalyzer":
        """Resolve the settings once and load from that spec."""
        return cls.load(cls.resolve(config))

    @classmethod
    def load(cls, spec: LoadSpec) -> "GPTOSSChristianAnalyzer":
        """Load a resolved spec, every file hashed against its manifest (read once, in
        `resolve`), and make it run as the spec's runtime; `AnalyzerUnavailable` names the file
        at fault. A runtime that fails to build or to run a first prediction falls back to
        `int8`, saying why. Runs on the process's torch thread (`selah.runtime.TorchThread`),
        as every prediction does."""
        return TORCH_THREAD.run(cls._load, spec)

    @classmethod
    def _load(cls, spec: LoadSpec) -> "GPTOSSChristianAnalyzer":
        from selah.checkpoint import load_checkpoint
        from selah.inference import pass_rows
        from selah.int8 import apply_runtime
        from selah.runtime import RuntimeChoice, choose_runtime

        choice = spec.runtime or choose_runtime("auto", spec.device)
        try:
            model, featurizer, manifest, sha = load_checkpoint(spec.checkpoint, spec.device)
        except CheckpointError as exc:
            raise AnalyzerUnavailable(f"GPTOSS checkpoint refused ({spec.source}): {exc}"
                                      ) from None
        try:  # songs of one window of each bucket: a compiled runtime compiles them now
            rows = pass_rows(featurizer.max_length)
            analyzer = cls(apply_runtime(model, choice.name, rows), featurizer, manifest, sha,
                           spec.checkpoint.path, spec.device, spec.batch_size, choice,
                           spec.evidence)
            if choice.name not in ("int8", "dequantized"):
                analyzer._analyze_batch([("Runtime check", "Selah", "Grace upon grace, " * n,
                                          None) for n in (8, 25, 60)])
        except Exception as exc:  # noqa: BLE001 - any failure of the runtime: fall back
            fallback = RuntimeChoice("int8", choice.requested,
                                     f"{choice.name} could not run "
                                     f"({type(exc).__name__}: {exc}): int8 instead")
            model, featurizer, manifest, sha = load_checkpoint(spec.checkpoint, spec.device)
            analyzer = cls(model, featurizer, manifest, sha, spec.checkpoint.path, spec.device,
                           spec.batch_size, fallback, spec.evidence)
        analyzer.heap.trim()
        return analyzer

    @classmethod
    def fingerprint(cls, config: Mapping[str, Any]) -> str | None:
        """Name, size and mtime of every file in the checkpoint folder, or None when it has no
        manifest (cheap: `stat` only). The watcher reloads when this changes."""
        path = checkpoint_path(config)
        try:
            entries = sorted(os.scandir(path), key=lambda entry: entry.name)
            if not any(entry.name == MANIFEST for entry in entries):
                return None
            stats = [(e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries
                     if e.is_file()]
        except OSError:
            return None
        return repr((str(path.resolve()), stats))

    # -- serving ---------------------------------------------------------------------------------

    def info(self) -> dict:
        """Backend, version, the model it runs and where it came from."""
        return {"backend": self.backend, "model_version": self.model_version,
                "models": [f"{self.model_id} ({self.model_version})"],
                "checkpoint": str(self.path), "checkpoint_sha256": self.checkpoint_sha256,
                "device": self.device, "quantization": self.manifest["quantization"]["method"],
                "runtime": self.runtime.name, "runtime_reason": self.runtime.reason}

    @property
    def model_id(self) -> str:
        """The checkpoint's model id (its backbone, distilled and quantized)."""
        return self.manifest.get("model_id") or "selah-student-int8"

    def snapshot(self) -> dict:
        """What produced a result: backend, model, checkpoint hash, quantization, device."""
        return {"backend": self.backend, "model_version": self.model_version,
                "model_id": self.model_id, "checkpoint_sha256": self.checkpoint_sha256,
                "quantization": self.manifest["quantization"]["method"],
                "schema_version": self.manifest["schema_version"], "device": self.device,
                "runtime": self.runtime.name, "created_at": self.manifest.get("created_at")}

    def _predict(self, songs: list[dict]) -> tuple[list[dict], list]:
        """The songs' predictions and quoted verses: all the torch work of a batch, for the torch
        thread (the quote index looks runs up with torch ops too; from a request thread they
        would start a second OpenMP team and slow every pass: a 1,500-character song took 361 ms
        over HTTP instead of 99 before this ran here)."""
        from selah.inference import predict_songs

        predictions = predict_songs(self.model, self.featurizer, songs, self.batch_size,
                                    self.device, self._context["decoding"], self.evidence)
        quotes = ([self.quotes.find(song["lyrics"]) for song in songs] if self.quotes
                  else [()] * len(songs))
        return predictions, quotes

    def _analyze_batch(self, items: list[tuple[str, str, str, int | None]]) -> list:
        from selah.analyzers.gptoss_render import render

        songs = [{"title": t, "artist": a, "lyrics": lyr} for t, a, lyr, _ in items]
        started = time.perf_counter()
        predictions, quotes = TORCH_THREAD.run(self._predict, songs)
        elapsed = (time.perf_counter() - started) / len(items)
        self.heap.analysed(sum(len(lyrics) for _, _, lyrics, _ in items))
        return [render(t, a, lyr, user, prediction, self._context, elapsed, found)
                for (t, a, lyr, user), prediction, found in zip(items, predictions, quotes)]
