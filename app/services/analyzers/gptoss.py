"""`GPTOSSChristianAnalyzer`: the distilled student served from an INT8 checkpoint folder.

The folder (`training.export` writes it; format in `training.manifest`) is `GPTOSS_MODEL_PATH`,
or the embedded default `app/checkpoints/default/`. Loading checks the manifest and the SHA-256 of
every file and refuses, naming the file, when anything is off; the service then answers 503 and
never makes up a result. Songs are analysed `GPTOSS_BATCH_SIZE` at a time under
`torch.inference_mode`; the same song gives the same result alone or in any batch (see
`training.inference`). The head outputs become an `AnalysisResult` in `gptoss_render`.

torch, transformers and `training.*` are imported inside methods: `import app` stays light, and a
service configured for another backend never loads them.
"""

import os
import time
from pathlib import Path
from typing import Any, ClassVar, Mapping

from app.services.analyzers.base import AnalyzerUnavailable, BaseAnalyzer

# Where the embedded default checkpoint lives inside the package.
EMBEDDED_CHECKPOINT = Path(__file__).resolve().parent.parent.parent / "checkpoints" / "default"
MANIFEST = "manifest.json"
DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_BATCH_SIZE = 16
INSTALL_HINT = "pip install -e . (torch, transformers, safetensors, pythonbible)"


def checkpoint_path(config: Mapping[str, Any]) -> Path:
    """The checkpoint folder: `GPTOSS_MODEL_PATH`, or the embedded default."""
    configured = config.get("GPTOSS_MODEL_PATH") or ""
    return Path(configured).expanduser() if configured else EMBEDDED_CHECKPOINT


def _source(config: Mapping[str, Any]) -> str:
    return "GPTOSS_MODEL_PATH" if config.get("GPTOSS_MODEL_PATH") else "embedded default"


def resolve_device(requested: str | None) -> str:
    """The torch device for `GPTOSS_DEVICE` (auto: cuda, then mps, then cpu); fails fast with
    `AnalyzerUnavailable` when the device asked for is not available."""
    import torch

    name = (requested or "auto").strip().lower()
    if name not in DEVICES:
        raise AnalyzerUnavailable(f"GPTOSS_DEVICE={requested!r} is not one of {', '.join(DEVICES)}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise AnalyzerUnavailable(
            f"GPTOSS_DEVICE=cuda, but torch {torch.__version__} sees no CUDA device (a CPU build, "
            "or no driver); set GPTOSS_DEVICE=cpu or auto")
    if name == "mps" and not has_mps:
        raise AnalyzerUnavailable("GPTOSS_DEVICE=mps, but the MPS backend is not available on "
                                  "this machine; set GPTOSS_DEVICE=cpu or auto")
    return name


def _batch_size(config: Mapping[str, Any]) -> int:
    value = config.get("GPTOSS_BATCH_SIZE") or DEFAULT_BATCH_SIZE
    if not isinstance(value, int) or value < 1:
        raise AnalyzerUnavailable(f"GPTOSS_BATCH_SIZE must be a positive integer, got {value!r}")
    return value


class GPTOSSChristianAnalyzer(BaseAnalyzer):
    """The distilled single-model analyzer (backend name `gptoss`)."""

    backend: ClassVar[str] = "gptoss"

    def __init__(self, model, featurizer, manifest: dict, checkpoint_sha256: str, path: Path,
                 device: str, batch_size: int = DEFAULT_BATCH_SIZE):
        self.model, self.featurizer, self.manifest = model, featurizer, manifest
        self.checkpoint_sha256, self.path = checkpoint_sha256, Path(path)
        self.device, self.batch_size = device, batch_size
        self.model_version = "gptoss-" + checkpoint_sha256[:12]
        self._context = {
            "scripture": manifest.get("scripture") or {},
            "decoding": manifest.get("decoding") or {},
            "snapshot": self.snapshot(),
        }

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def preflight_config(cls, config: Mapping[str, Any]) -> tuple[bool, str]:
        """Check the folder, its manifest and file sizes, the device and the imports; no weights."""
        path = checkpoint_path(config)
        if not (path / MANIFEST).is_file():
            return False, (
                f"no GPTOSS checkpoint at {path} ({_source(config)}): {MANIFEST} is missing. "
                "Export a student checkpoint (python -m training.export) and point "
                "GPTOSS_MODEL_PATH at its folder.")
        from training.manifest import CheckpointError, check_files, read_manifest

        try:
            manifest, sha = read_manifest(path)
            check_files(path, manifest, hashes=False)
        except CheckpointError as exc:
            return False, f"GPTOSS checkpoint refused ({_source(config)}): {exc}"
        try:
            import safetensors  # noqa: F401
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as exc:
            return False, f"the gptoss backend needs torch and transformers ({exc}); {INSTALL_HINT}"
        try:
            device = resolve_device(config.get("GPTOSS_DEVICE"))
            _batch_size(config)
        except AnalyzerUnavailable as exc:
            return False, str(exc)
        return True, f"checkpoint gptoss-{sha[:12]} at {path} ready to load on {device}"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "GPTOSSChristianAnalyzer":
        """Verify and load the checkpoint; `AnalyzerUnavailable` says what is wrong."""
        ok, message = cls.preflight_config(config)
        if not ok:
            raise AnalyzerUnavailable(message)
        from training.manifest import CheckpointError, load_checkpoint

        path = checkpoint_path(config)
        device = resolve_device(config.get("GPTOSS_DEVICE"))
        try:
            model, featurizer, manifest, sha = load_checkpoint(path, device)
        except CheckpointError as exc:
            raise AnalyzerUnavailable(f"GPTOSS checkpoint refused ({_source(config)}): {exc}"
                                      ) from None
        return cls(model, featurizer, manifest, sha, path, device, _batch_size(config))

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
                "device": self.device, "quantization": self.manifest["quantization"]["method"]}

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
                "created_at": self.manifest.get("created_at")}

    def _analyze_batch(self, items: list[tuple[str, str, str, int | None]]) -> list:
        from training.inference import predict_songs

        from app.services.analyzers.gptoss_render import render

        songs = [{"title": t, "artist": a, "lyrics": lyr} for t, a, lyr, _ in items]
        started = time.perf_counter()
        predictions = predict_songs(self.model, self.featurizer, songs, self.batch_size,
                                    self.device)
        elapsed = (time.perf_counter() - started) / len(items)
        return [render(t, a, lyr, user, prediction, self._context, elapsed)
                for (t, a, lyr, user), prediction in zip(items, predictions)]
