"""`GPTOSSChristianAnalyzer`: the distilled student served from an exported checkpoint folder.

The checkpoint format, the model code and the embedded default are delivered by the distillation
issue. Until a checkpoint exists, loading fails with `AnalyzerUnavailable` saying what is missing,
and the service answers 503: it never makes up a result.
"""

from pathlib import Path
from typing import Any, ClassVar, Mapping

from app.services.analyzers.base import AnalyzerUnavailable, BaseAnalyzer

# Where the embedded default checkpoint lives inside the package.
EMBEDDED_CHECKPOINT = Path(__file__).resolve().parent.parent.parent / "checkpoints" / "default"
MANIFEST = "manifest.json"


def checkpoint_path(config: Mapping[str, Any]) -> Path:
    """The checkpoint folder: `GPTOSS_MODEL_PATH`, or the embedded default."""
    configured = config.get("GPTOSS_MODEL_PATH") or ""
    return Path(configured).expanduser() if configured else EMBEDDED_CHECKPOINT


class GPTOSSChristianAnalyzer(BaseAnalyzer):
    """The distilled single-model analyzer (backend name `gptoss`)."""

    backend: ClassVar[str] = "gptoss"

    @classmethod
    def preflight_config(cls, config: Mapping[str, Any]) -> tuple[bool, str]:
        """Check that a checkpoint folder with a manifest exists at the configured path."""
        path = checkpoint_path(config)
        if not (path / MANIFEST).is_file():
            source = "GPTOSS_MODEL_PATH" if config.get("GPTOSS_MODEL_PATH") else "embedded default"
            return False, (
                f"no GPTOSS checkpoint at {path} ({source}): {MANIFEST} is missing. "
                "Export a student checkpoint and point GPTOSS_MODEL_PATH at its folder."
            )
        return False, (
            f"checkpoint found at {path}, but this build cannot load GPTOSS checkpoints yet "
            "(the student model code is not part of it)"
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "GPTOSSChristianAnalyzer":
        """Load the checkpoint; raises `AnalyzerUnavailable` with the preflight's reason."""
        ok, message = cls.preflight_config(config)
        if not ok:
            raise AnalyzerUnavailable(message)
        raise AnalyzerUnavailable(message)  # pragma: no cover - replaced when loading lands
