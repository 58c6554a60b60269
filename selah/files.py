"""File helpers every stage shares: SHA-256 of bytes, files and folders, and the atomic folder swap.

Standard library only: the service checks a checkpoint folder with these before importing torch.
"""

import hashlib
import os
import shutil
from pathlib import Path
from typing import Iterable

BLOCK = 1 << 20  # files are hashed in 1 MiB reads


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_files(paths: Iterable[str | Path]) -> str:
    """Hex SHA-256 of the files' bytes read one after another, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(BLOCK), b""):
                digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of one file's bytes."""
    return sha256_files([path])


def replace_folder(staging: str | Path, folder: str | Path) -> Path:
    """Move the complete folder `staging` to `folder`, replacing what is there.

    An existing `folder` is first renamed aside (a hidden sibling named after this process) and
    deleted only after the new one is in place, so a crash leaves either the old folder or the new
    one at `folder`, never a half-written mix. Both paths must be on one file system.
    """
    staging, folder = Path(staging), Path(folder)
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(staging, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder
