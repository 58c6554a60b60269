"""Measurements of this machine kept on disk between processes: small JSON files of `key: value`
whose keys start with what makes a measurement this machine's (`machine()`).

Used for the bf16 runtime's row floors (`selah.floors`) and for `auto`'s race between the bf16
and int8 runtimes (`selah.race`), both through `recall`. A file that cannot be read or written is
ignored (the value is measured again); nothing in one is shipped.
"""

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

from selah.runtime import cpu_flags, cpuinfo_field


def cache_file(variable: str, name: str) -> Path | None:
    """The file `$variable` names, else `~/.cache/selah/<name>`; None (memory only) when the
    variable is set but empty."""
    configured = os.environ.get(variable)
    if configured is not None:
        return Path(configured).expanduser() if configured.strip() else None
    return Path.home() / ".cache" / "selah" / name


@functools.cache
def machine() -> str:
    """The part of every key that is this process's for good: CPU model and flags, torch."""
    flags = hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:16]
    model = cpuinfo_field("model name") or "unknown CPU"
    return f"{model} flags={flags} torch={torch.__version__}"  # its oneDNN comes with it


def read(path: Path | None) -> dict:
    """The file's entries ({} when there is no file, or it cannot be read or is not an object)."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write(path: Path | None, key: str, value) -> None:
    """Add `key` to the file, written whole to a temporary file and renamed over it (a reader
    never sees half a file; of two writers at once the later wins, the other's value is measured
    again next time)."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {**read(path), key: value}
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=path.name, suffix=".tmp",
                                         delete=False, encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(handle.name, path)
    except OSError:
        pass


@contextlib.contextmanager
def locked(path: Path | None):
    """Hold an exclusive lock on `path`'s lock file (`<path>.lock`) meanwhile, so that of the
    processes measuring the same thing at once one measures and the others read its result. No
    lock where there is no file or `fcntl` (not POSIX), or the lock file cannot be opened."""
    handle = None
    if path is not None:
        try:
            import fcntl

            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115
            fcntl.flock(handle, fcntl.LOCK_EX)
        except (ImportError, OSError):
            if handle is not None:
                handle.close()
            handle = None
    try:
        yield
    finally:
        if handle is not None:
            handle.close()  # closing the file releases the lock


def recall(memory: dict, path: Path | None, key: str, measure, valid):
    """`memory[key]`; else the file's entry for `key` where `valid(entry)`; else `measure()`,
    kept in both. The file is read and written under its lock (`locked`), so processes that
    need the same measurement at once measure it once."""
    if key not in memory:
        with locked(path):
            stored = read(path).get(key)
            if valid(stored):
                memory[key] = stored
            else:
                memory[key] = measure()
                write(path, key, memory[key])
    return memory[key]
