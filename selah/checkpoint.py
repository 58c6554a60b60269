"""The INT8 checkpoint folder the service loads: its manifest, file hashes and loading.

A checkpoint folder (written by `training.quantize.export`) is self-contained:

- `manifest.json`: format and schema version, backbone config and source, pooling, windows,
  label vocabularies (heads), quantization, training config and metrics, data hash, agreement
  with the float model, sizes, the theme -> scripture table, creation time, and the SHA-256 and
  size of every other file (`files`);
- `model.safetensors`: the INT8 state dict (`selah.int8`);
- the tokenizer files and `MODEL_CARD.md`.

The service's model version comes from the SHA-256 of `manifest.json`, which pins every other
file. Only the standard library at import time: the service checks a folder without torch.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from selah.files import sha256_bytes, sha256_file

FORMAT = "selah-int8-checkpoint-1"
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
CARD = "MODEL_CARD.md"
REQUIRED_KEYS = ("format", "schema_version", "backbone_config", "pooling", "max_length", "stride",
                 "heads", "quantization", "files")


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be used; the message names the folder or file at fault."""


def file_table(folder: str | Path) -> dict[str, dict]:
    """`{name: {sha256, bytes}}` of every file in `folder` except the manifest, sorted by name."""
    return {
        path.name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        for path in sorted(Path(folder).iterdir()) if path.is_file() and path.name != MANIFEST
    }


def write_manifest(folder: str | Path, manifest: dict) -> str:
    """Fill `format` and `files` from the folder, write `manifest.json`; returns its SHA-256."""
    folder = Path(folder)
    manifest = {**manifest, "format": FORMAT, "files": file_table(folder)}
    raw = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    (folder / MANIFEST).write_bytes(raw)
    return sha256_bytes(raw)


def read_manifest(folder: str | Path) -> tuple[dict, str]:
    """`(manifest, SHA-256 of manifest.json)`, checked for format, keys and schema version."""
    from selah import schema

    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {folder}: {MANIFEST} is missing")
    raw = path.read_bytes()
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CheckpointError(f"{path}: format {found!r} is not {FORMAT!r}")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise CheckpointError(f"{path}: missing {', '.join(missing)}")
    if manifest["schema_version"] != schema.SCHEMA_VERSION:
        raise CheckpointError(f"{path}: label schema {manifest['schema_version']!r}, this build "
                              f"reads {schema.SCHEMA_VERSION!r}; export the checkpoint again")
    if WEIGHTS not in manifest["files"]:
        raise CheckpointError(f"{path}: {WEIGHTS} is not listed in files")
    return manifest, sha256_bytes(raw)


def check_files(folder: str | Path, manifest: dict, hashes: bool = True,
                skip: tuple[str, ...] = ()) -> None:
    """Every file the manifest lists (but `skip`) exists with its size and, with `hashes`, its
    SHA-256; CheckpointError names the first file that does not."""
    folder = Path(folder)
    for name, expected in sorted(manifest["files"].items()):
        if name in skip:
            continue
        path = folder / name
        if Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(f"{folder / MANIFEST}: file name {name!r} is not a plain name")
        if not path.is_file():
            raise CheckpointError(f"{path} is missing (listed in {MANIFEST})")
        if path.stat().st_size != expected["bytes"]:
            raise CheckpointError(f"{path}: {path.stat().st_size} bytes, {MANIFEST} says "
                                  f"{expected['bytes']}; the file is corrupt or was replaced")
        if hashes and sha256_file(path) != expected["sha256"]:
            raise CheckpointError(f"{path}: SHA-256 does not match {MANIFEST}; the file is "
                                  "corrupt or was replaced")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint folder whose manifest has been read and checked once: format, keys, schema
    version, and every listed file present with its size. `load_checkpoint` takes it as is."""

    path: Path
    manifest: dict
    manifest_sha256: str


def open_checkpoint(folder: str | Path) -> Checkpoint:
    """Read and check `folder`'s manifest and file sizes (no hashing, no torch); CheckpointError
    says what is wrong."""
    folder = Path(folder)
    manifest, sha = read_manifest(folder)
    check_files(folder, manifest, hashes=False)
    return Checkpoint(folder, manifest, sha)


def load_checkpoint(checkpoint: Checkpoint | str | Path, device: str = "cpu"):
    """`(model, featurizer, manifest, manifest SHA-256)` in eval mode on `device`, from an opened
    `Checkpoint` (its manifest is not read again) or a folder (opened first).

    Every file is hashed against the manifest; the weights from the very bytes that are loaded,
    so a file swapped between the check and the load cannot slip through.
    """
    from safetensors.torch import load as load_safetensors
    from transformers import AutoTokenizer

    from selah.int8 import build_int8_student
    from selah.student import Featurizer

    if not isinstance(checkpoint, Checkpoint):
        checkpoint = open_checkpoint(checkpoint)
    folder, manifest = checkpoint.path, checkpoint.manifest
    check_files(folder, manifest, skip=(WEIGHTS,))
    raw = (folder / WEIGHTS).read_bytes()
    expected = manifest["files"][WEIGHTS]
    if len(raw) != expected["bytes"] or sha256_bytes(raw) != expected["sha256"]:
        raise CheckpointError(f"{folder / WEIGHTS}: SHA-256 does not match {MANIFEST}; the file "
                              "is corrupt or was replaced")
    try:
        description = {key: manifest[key] for key in
                       ("backbone_config", "pooling", "heads", "max_length", "stride")}
        model = build_int8_student(description, manifest["quantization"], load_safetensors(raw))
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{folder / WEIGHTS} does not fit the manifest's model: {exc}"
                              ) from None
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    featurizer = Featurizer(tokenizer, manifest["max_length"], manifest["stride"],
                            manifest.get("prompt", "plain"))
    return model.to(device), featurizer, manifest, checkpoint.manifest_sha256
