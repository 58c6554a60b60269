"""OUT/last of a distillation run: the student folder plus everything needed to resume exactly.

`trainer_state.pt` holds the optimizer and scheduler state, the loop counters (epoch, step within
the epoch, global step), the history so far, the best checkpoint's record, the config and the RNG
state of torch, numpy and Python, so a resumed run draws the same dropout masks as an uninterrupted
one (the data order is a function of seed and epoch, not of RNG state). It loads with
`torch.load(weights_only=True)`: only tensors and plain containers are stored.
"""

import random
import shutil
from pathlib import Path

import numpy as np
import torch

from selah.files import replace_folder
from selah.student import save_student
from training.distill.adapters import plain_state_dict

STATE_FILE = "trainer_state.pt"


def rng_state() -> dict:
    """The torch, numpy and Python RNG states, as tensors and plain values."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` saved."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def has_training_state(folder: str | Path) -> bool:
    """Whether `folder` (OUT/last) holds a resumable state."""
    return (Path(folder) / STATE_FILE).is_file()


def save_training_state(folder: str | Path, model, tokenizer, featurizer, meta: dict,
                        state: dict) -> Path:
    """Write the student and `state` (with the RNG state added) to `folder`, replacing it only
    once the new copy is complete."""
    folder = Path(folder)
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    save_student(model, tokenizer, staging, featurizer, meta, plain_state_dict(model))
    torch.save({**state, "rng": rng_state()}, staging / STATE_FILE)
    return replace_folder(staging, folder)


def load_training_state(folder: str | Path, model) -> dict:
    """Load the weights of `folder` into `model` and return its saved state (RNG restored).

    A run with LoRA adapters saved its trained tensors (adapters, heads) under `trainable`; the
    rest of such a model is the pretrained backbone, frozen and reloaded unchanged at setup."""
    from safetensors.torch import load_file

    folder = Path(folder)
    saved = torch.load(folder / STATE_FILE, weights_only=True)
    if "trainable" in saved:
        unexpected = model.load_state_dict(saved["trainable"], strict=False).unexpected_keys
        if unexpected:
            raise ValueError(f"{folder}: tensors the model does not have: {unexpected[:5]}")
    else:
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
    set_rng_state(saved["rng"])
    return saved


def changed_settings(saved: dict, current: dict, ignore: set[str]) -> list[str]:
    """`name: old -> new` for every setting that differs, except those in `ignore`."""
    names = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in names
            if k not in ignore and saved.get(k) != current.get(k)]
