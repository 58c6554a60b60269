"""What this process runs on: the torch device a setting names, and its peak memory.

The service's `GPTOSS_DEVICE`, the teacher's and the student's `--device` all resolve here, so
`auto` means the same everywhere: CUDA, then Apple MPS, then the CPU.
"""

import sys

DEVICES = ("auto", "cpu", "cuda", "mps")


class DeviceUnavailable(ValueError):
    """The device asked for is unknown or not available here; the message says what to use."""


def _has_mps(torch) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(requested: str | None, setting: str = "--device") -> str:
    """The torch device name for `requested` (`auto`: cuda, then mps, then cpu). Raises
    `DeviceUnavailable`, naming `setting` (the option or variable that asked), when the device is
    unknown or missing, before any weights load."""
    import torch

    name = (requested or "auto").strip().lower()
    if name not in DEVICES:
        raise DeviceUnavailable(f"{setting}={requested!r} is not one of {', '.join(DEVICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if _has_mps(torch) else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"{setting}=cuda, but torch {torch.__version__} sees no CUDA device (a CPU build, or "
            f"no driver); set {setting}=cpu or auto")
    if name == "mps" and not _has_mps(torch):
        raise DeviceUnavailable(f"{setting}=mps, but the MPS backend is not available on this "
                                f"machine; set {setting}=cpu or auto")
    return name


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process so far, in MiB (None where the OS cannot say)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, AttributeError, OSError):
        return None
    # Linux reports KiB, macOS bytes.
    return round(peak / (1 << 20) if sys.platform == "darwin" else peak / (1 << 10), 1)
