"""The student's backbone split into a frozen bottom and a trained top, and the frozen part's cache.

`trainable_layers` = k fine-tunes the top k transformer layers (and whatever runs after them: a
final norm, the pooler), k = 0 freezes the whole backbone (only the heads train) and k = -1 trains
everything, embeddings included. Frozen modules always run in eval mode (no dropout), so their
output is a fixed function of the song: it is computed once per song, under no grad, and cached
(`frozen_features`, kept by a `FeatureStore`). What is cached:

- k = 0: the pooled song vector [hidden] (training touches only the heads);
- 0 < k <= layers: the hidden states entering the first trained layer [windows, length, hidden].
  In the forward pass the frozen layers are swapped for pass-through stubs and the first trained
  layer reads the cached states, so the frozen bottom costs nothing after the first epoch;
- k = -1: nothing (the embeddings train).

Without the cache (`cache_frozen: false`) the frozen bottom still records no autograd graph: its
parameters do not require grad and token ids carry none, so it runs as under `torch.no_grad`.

Caching is exact up to float rounding from padding to a batch's longest window (the same rounding
batching gives without the cache); `cache_agrees` compares both paths on a few songs at setup and
turns the cache off if they disagree, so an architecture whose layers do not take and return a
plain hidden-states tensor falls back to the slow path instead of training on wrong inputs.
"""

import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

CACHE_TOLERANCE = 1e-4
# A long feature pass writes what it has computed this often (seconds), so a killed run resumes
# there: a big backbone's pass over the data set takes most of an hour on 2 cores in float32.
SAVE_EVERY_S = 300.0


def song_key(example) -> str:
    """Digest of the text the student reads for a song (the frozen-feature cache's key)."""
    from selah.student import song_text

    text = song_text(example.title, example.artist, example.lyrics)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def layer_list(backbone: nn.Module) -> nn.ModuleList:
    """The backbone's stack of transformer layers (the ModuleList as long as the layer count)."""
    count = backbone.config.num_hidden_layers
    for module in backbone.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ValueError(f"cannot find the {count} transformer layers of {type(backbone).__name__}")


def _is_embedding(name: str) -> bool:
    return "embed" in name.split(".")[0]


@dataclass(frozen=True)
class FreezePlan:
    """Which part of the backbone is frozen: `n_frozen` bottom layers, and the embeddings or not."""

    n_layers: int
    n_frozen: int
    embeddings_frozen: bool

    @property
    def cache_kind(self) -> str | None:
        """`pooled`, `hidden` or None (nothing frozen to cache)."""
        if not self.embeddings_frozen:
            return None
        return "pooled" if self.n_frozen == self.n_layers else "hidden"


def apply_freeze(model: nn.Module, trainable_layers: int) -> FreezePlan:
    """Set `requires_grad` for `trainable_layers` (k top layers, 0 frozen, -1 all); the plan."""
    layers = layer_list(model.backbone)
    n_layers = len(layers)
    if trainable_layers > n_layers or trainable_layers < -1:
        raise ValueError(f"trainable_layers must be -1..{n_layers} for this backbone, "
                         f"got {trainable_layers}")
    if trainable_layers == -1:
        model.requires_grad_(True)
        return FreezePlan(n_layers, 0, False)
    n_frozen = n_layers - trainable_layers
    index = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
    below = feeds_frozen_layers(model.backbone, n_frozen) if 0 < n_frozen < n_layers else set()
    for name, param in model.backbone.named_parameters():
        if id(param) in index:
            param.requires_grad_(index[id(param)] >= n_frozen)
        else:  # embeddings and what the frozen layers read stay; final norm / pooler train
            param.requires_grad_(not _is_embedding(name) and trainable_layers > 0
                                 and id(param) not in below)
    model.heads.requires_grad_(True)
    return FreezePlan(n_layers, n_frozen, True)


def feeds_frozen_layers(backbone: nn.Module, n_frozen: int) -> set[int]:
    """Ids of the parameters outside the layers that the first `n_frozen` layers' output depends
    on (found by one backward pass of a 4-token input): a shared encoder parameter such as
    MPNet's relative attention bias, which must stay frozen for the frozen part's output, and so
    its cache, to stay fixed."""
    inside = {id(p) for layer in layer_list(backbone) for p in layer.parameters()}
    # embeddings stay frozen by name: no gradient buffer for them (gpt-oss's is 0.6 B values)
    outside = [p for name, p in backbone.named_parameters()
               if id(p) not in inside and not _is_embedding(name)]
    if not outside:
        return set()
    state = [p.requires_grad for p in outside]
    grads = {id(p): p.grad for p in backbone.parameters()}
    training = backbone.training
    backbone.eval()  # no dropout: the probe draws nothing from the RNG
    try:
        for p in outside:
            p.requires_grad_(True)
            p.grad = None
        token = min(5, backbone.config.vocab_size - 1)
        with torch.enable_grad():
            hidden = entering_states(backbone, n_frozen,
                                     torch.full((1, 4), token, dtype=torch.long),
                                     torch.ones(1, 4, dtype=torch.long))
            if not hidden.requires_grad:  # nothing on the path asks for a gradient
                return set()
            hidden.float().sum().backward()
        return {id(p) for p in outside if p.grad is not None and bool(p.grad.any())}
    finally:
        backbone.train(training)
        for p, requires in zip(outside, state):
            p.requires_grad_(requires)
        for p in backbone.parameters():  # no gradient left behind (clipping reads them all)
            p.grad = grads[id(p)]


def frozen_modules(model: nn.Module, plan: FreezePlan) -> list[nn.Module]:
    """The modules that stay in eval mode while training (no dropout in the frozen part)."""
    if not plan.embeddings_frozen:
        return []
    if plan.n_frozen == plan.n_layers:
        return [model.backbone]
    embeddings = [m for name, m in model.backbone.named_children() if _is_embedding(name)]
    return embeddings + list(layer_list(model.backbone)[:plan.n_frozen])


def set_train_mode(model: nn.Module, plan: FreezePlan) -> None:
    """`model.train()` with the frozen modules back in eval mode."""
    model.train()
    for module in frozen_modules(model, plan):
        module.eval()


class _Captured(Exception):
    """Stops a forward pass once the frozen part's output is captured."""


class _PassThrough(nn.Module):
    """Stands in for a cached frozen layer: returns the hidden states it is given, alone or as
    the first item of a tuple, as the real layers do (BERT's return a tensor, MPNet's a tuple)."""

    def __init__(self, as_tuple: bool = False):
        super().__init__()
        self.as_tuple = as_tuple

    def forward(self, hidden_states, *args, **kwargs):  # noqa: D102 - a stub
        return (hidden_states,) if self.as_tuple else hidden_states


def layer_returns_tuple(backbone: nn.Module) -> bool:
    """Whether the backbone's layers return a tuple (known once a full forward pass has run:
    `cache_agrees` runs one and records it)."""
    return getattr(backbone, "_selah_layer_tuple", False)


def entering_states(backbone: nn.Module, index: int, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor) -> torch.Tensor:
    """The hidden states entering layer `index` (the forward pass stops there), computed in the
    caller's grad mode."""
    captured = {}

    def capture(module, args, kwargs):
        captured["hidden"] = args[0] if args else kwargs["hidden_states"]
        raise _Captured

    handle = layer_list(backbone)[index].register_forward_pre_hook(capture, with_kwargs=True)
    try:
        backbone(input_ids=input_ids, attention_mask=attention_mask)
    except _Captured:
        pass
    finally:
        handle.remove()
    return captured["hidden"]


def _replace_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden,) + tuple(args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


@contextmanager
def injected(model: nn.Module, n_frozen: int, hidden: torch.Tensor):
    """Within the block, the backbone skips its first `n_frozen` layers and feeds `hidden`
    [windows, length, hidden] to layer `n_frozen` (the embeddings still run; they are cheap)."""
    layers = layer_list(model.backbone)
    saved = [layers[i] for i in range(n_frozen)]
    handle = layers[n_frozen].register_forward_pre_hook(
        lambda module, args, kwargs: _replace_hidden(args, kwargs, hidden), with_kwargs=True)
    try:
        for i in range(n_frozen):
            layers[i] = _PassThrough(layer_returns_tuple(model.backbone))
        yield
    finally:
        handle.remove()
        for i, layer in enumerate(saved):
            layers[i] = layer


def collate(encoded: Sequence[dict], pad_id: int, hidden: Sequence[torch.Tensor] | None = None
            ) -> dict:
    """One batch from per-song windows (`{input_ids [W, L], attention_mask [W, L]}` each), padded
    to the longest window; cached hidden states [W, L, H] are padded with zeros alike."""
    length = max(e["input_ids"].size(1) for e in encoded)
    ids, masks, owners, states = [], [], [], []
    for song, e in enumerate(encoded):
        pad = length - e["input_ids"].size(1)
        ids.append(nn.functional.pad(e["input_ids"], (0, pad), value=pad_id))
        masks.append(nn.functional.pad(e["attention_mask"], (0, pad), value=0))
        owners.append(torch.full((e["input_ids"].size(0),), song, dtype=torch.long))
        if hidden is not None:
            states.append(nn.functional.pad(hidden[song], (0, 0, 0, pad)))
    batch = {"input_ids": torch.cat(ids), "attention_mask": torch.cat(masks),
             "song_index": torch.cat(owners), "n_songs": len(encoded)}
    if hidden is not None:
        batch["hidden"] = torch.cat(states)
    return batch


def fingerprint(model: nn.Module, plan: FreezePlan, featurizer, precision: str = "no") -> str:
    """Hash of everything the frozen part's output depends on (weights, config, windows, the
    autocast dtype)."""
    digest = hashlib.sha256()
    description = {"kind": plan.cache_kind, "n_frozen": plan.n_frozen, "pooling": model.pooling,
                   "max_length": featurizer.max_length, "stride": featurizer.stride,
                   "backbone": model.backbone.config.to_dict(), "torch": torch.__version__}
    # Defaults stay out of the description, so caches made before these settings keep their keys.
    if getattr(featurizer, "prompt", "plain") != "plain":
        description["prompt"] = featurizer.prompt
    if precision != "no":
        description["mixed_precision"] = precision
    digest.update(json.dumps(description, sort_keys=True, default=str).encode())
    for module in frozen_modules(model, plan):
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class FeatureStore:
    """Frozen features by fingerprint, kept in memory and, given a folder, on disk across runs
    (cross-validation folds and recipes share them: the frozen part does not depend on the fold)."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder else None
        self._tables: dict[str, dict[str, torch.Tensor]] = {}

    def table(self, key: str) -> dict[str, torch.Tensor]:
        """The `{song key: tensor}` table of a fingerprint (loaded from disk when there)."""
        if key not in self._tables:
            path = self._path(key)
            self._tables[key] = (torch.load(path, weights_only=True, mmap=True)
                                 if path is not None and path.is_file() else {})
        return self._tables[key]

    def save(self, key: str) -> None:
        """Write a fingerprint's table to the folder (no-op without one)."""
        path = self._path(key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(self._tables[key], path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)

    def _path(self, key: str) -> Path | None:
        return self.folder / f"frozen-{key[:24]}.pt" if self.folder else None


@torch.inference_mode()
def compute_frozen(model: nn.Module, plan: FreezePlan, encoded: Sequence[dict], pad_id: int,
                   device: torch.device) -> list[torch.Tensor]:
    """The frozen part's output for a few songs: pooled [H] or entering-layer states [W, L, H]."""
    batch = {k: v.to(device) if torch.is_tensor(v) else v
             for k, v in collate(encoded, pad_id).items()}
    if plan.cache_kind == "pooled":
        return list(model.encode(**batch).float().cpu())
    hidden = entering_states(model.backbone, plan.n_frozen, batch["input_ids"],
                             batch["attention_mask"]).cpu()
    owners = batch["song_index"].cpu()
    return [hidden[owners == song, : e["input_ids"].size(1)].clone()
            for song, e in enumerate(encoded)]


def frozen_features(model: nn.Module, plan: FreezePlan, featurizer, encoded: Sequence[dict],
                    keys: Sequence[str], store: FeatureStore, accelerator, batch_size: int = 16,
                    progress: bool = True) -> list[torch.Tensor]:
    """The frozen part's output for every song (`encoded`: its windows, `keys`: a digest of its
    text), from `store` or computed now (eval mode, the accelerator's autocast), then stored."""
    from tqdm.auto import tqdm

    model.eval()
    pad_id = featurizer.tokenizer.pad_token_id
    key = fingerprint(model, plan, featurizer, str(accelerator.mixed_precision))
    table = store.table(key)
    missing = [i for i, k in enumerate(keys) if k not in table]
    if missing:
        starts = range(0, len(missing), batch_size)
        saved = time.monotonic()
        for start in tqdm(starts, desc="frozen features", disable=not progress):
            rows = missing[start:start + batch_size]
            with accelerator.autocast():
                values = compute_frozen(model, plan, [encoded[r] for r in rows], pad_id,
                                        accelerator.device)
            for row, value in zip(rows, values):
                table[keys[row]] = value
            if time.monotonic() - saved >= SAVE_EVERY_S:  # a killed run keeps what it computed
                store.save(key)
                saved = time.monotonic()
        store.save(key)
    return [table[k] for k in keys]


@torch.inference_mode()
def cache_agrees(model: nn.Module, plan: FreezePlan, encoded: Sequence[dict],
                 frozen: Sequence[torch.Tensor], pad_id: int) -> bool:
    """Whether feeding cached states to the trained layers gives the full forward's logits
    (eval mode) on the songs given."""
    device = next(model.parameters()).device
    batch = collate(encoded, pad_id, frozen)
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    hidden = batch.pop("hidden")
    model.eval()
    layer = layer_list(model.backbone)[0]
    handle = layer.register_forward_hook(lambda module, args, output: setattr(
        model.backbone, "_selah_layer_tuple", isinstance(output, tuple)))
    try:
        full = model(**batch)
    finally:
        handle.remove()
    try:
        with injected(model, plan.n_frozen, hidden):
            cached = model(**batch)
    except (TypeError, IndexError, ValueError, RuntimeError):  # layers that want more than states
        return False
    return all(torch.allclose(full[k], cached[k], atol=CACHE_TOLERANCE, rtol=1e-3) for k in full)
