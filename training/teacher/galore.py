"""GaLore for the teacher: which parameters get low-rank gradient projection, and saving its state.

GaLore (Zhao et al. 2024, `galore-torch`) projects each 2-D weight's gradient onto a rank-r subspace
found by SVD every `update_proj_gap` steps and keeps Adam's moments in that subspace. Here it
covers the attention and MLP projections (`TARGETS`); embeddings, norms and the LM head train with
plain AdamW in the same optimizer (a second parameter group).

- `CPUSVDProjector`: the projector with its SVD on the CPU in float32, for devices whose SVD is
  missing or unreliable (MPS); the result goes back to the gradient's device and dtype.
- `optimizer_state` / `load_optimizer_state`: the optimizer's state with each projector written as
  plain tensors and numbers, so a checkpoint loads with `torch.load(weights_only=True)`.
"""

from typing import Any

import torch
from torch import nn

from selah.deps import require

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_PROJECTOR_FIELDS = ("rank", "update_proj_gap", "scale", "proj_type")


def _projector_class():
    return require("galore_torch", "GaLore fine-tuning").adamw.GaLoreProjector


def cpu_svd_projector(*args: Any, **kwargs: Any):
    """A GaLore projector whose SVD runs on the CPU in float32."""

    class CPUSVDProjector(_projector_class()):
        def get_orthogonal_matrix(self, weights, rank, type):  # noqa: A002 - galore's name
            result = super().get_orthogonal_matrix(weights.detach().float().cpu(), rank, type)
            if isinstance(result, list):
                return [m.to(weights.device, weights.dtype) for m in result]
            return result.to(weights.device, weights.dtype)

    return CPUSVDProjector(*args, **kwargs)


def galore_parameters(model: nn.Module, targets: tuple[str, ...] = TARGETS
                      ) -> dict[str, nn.Parameter]:
    """`{name: weight}` of the 2-D weights of modules named like `targets` (the GaLore group)."""
    chosen = {}
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module_name.rsplit(".", 1)[-1] in targets:
            chosen[f"{module_name}.weight"] = module.weight
    return chosen


def param_groups(model: nn.Module, rank: int, update_proj_gap: int, scale: float,
                 proj_type: str = "std", weight_decay: float = 0.0,
                 targets: tuple[str, ...] = TARGETS) -> list[dict]:
    """Two optimizer groups: GaLore (rank, gap, scale, projection type) and the rest."""
    galore = galore_parameters(model, targets)
    if not galore:
        raise ValueError(f"no linear layer named like {', '.join(targets)}; set galore_targets")
    chosen = {id(p) for p in galore.values()}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in chosen]
    groups = [{"params": [p for p in galore.values() if p.requires_grad], "rank": rank,
               "update_proj_gap": update_proj_gap, "scale": scale, "proj_type": proj_type,
               "weight_decay": weight_decay, "name": "galore"}]
    if rest:
        groups.append({"params": rest, "weight_decay": 0.0, "name": "other"})
    return groups


def build_optimizer(groups: list[dict], lr: float, cpu_svd: bool = False,
                    eight_bit: bool = False) -> torch.optim.Optimizer:
    """GaLore AdamW (or its 8-bit variant) over `groups`; with `cpu_svd` every projector is a
    `CPUSVDProjector`, created up front (the optimizer only makes one where none exists)."""
    galore_torch = require("galore_torch", "GaLore fine-tuning")
    if eight_bit:
        optimizer = galore_torch.GaLoreAdamW8bit(groups, lr=lr)
    else:
        optimizer = galore_torch.GaLoreAdamW(groups, lr=lr, no_deprecation_warning=True)
    if cpu_svd:
        for group in optimizer.param_groups:
            if "rank" in group:
                for p in group["params"]:
                    optimizer.state[p]["projector"] = cpu_svd_projector(
                        group["rank"], update_proj_gap=group["update_proj_gap"],
                        scale=group["scale"], proj_type=group["proj_type"])
    return optimizer


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """`optimizer.state_dict()` with projectors as `{"ortho_matrix", "rank", ...}` dicts."""
    state = optimizer.state_dict()  # its per-parameter dicts are the live ones: copy, not edit
    for key, entry in list(state["state"].items()):
        projector = entry.get("projector")
        if projector is not None and not isinstance(projector, dict):
            ortho = projector.ortho_matrix
            state["state"][key] = entry = dict(entry)
            entry["projector"] = {
                **{k: getattr(projector, k) for k in _PROJECTOR_FIELDS},
                "ortho_matrix": list(ortho) if isinstance(ortho, list) else ortho,
                "cpu_svd": type(projector).__name__ == "CPUSVDProjector",
            }
    return state


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load what `optimizer_state` saved, turning projector dicts back into projectors.

    The projector settings are read from `state` itself: `Optimizer.load_state_dict` casts
    nested values, and turns a string such as `proj_type` into a generator's repr."""
    optimizer.load_state_dict(state)
    projector_class = _projector_class()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, param in enumerate(params):
        saved = state["state"].get(index, {}).get("projector")
        if not isinstance(saved, dict):
            continue
        args = {k: saved[k] for k in _PROJECTOR_FIELDS}
        rank = args.pop("rank")
        projector = (cpu_svd_projector(rank, **args) if saved["cpu_svd"]
                     else projector_class(rank, **args))
        loaded = optimizer.state[param]["projector"]["ortho_matrix"]  # on the param's device
        projector.ortho_matrix = list(loaded) if isinstance(loaded, (list, tuple)) else loaded
        optimizer.state[param]["projector"] = projector
