"""The distillation loop's optimizer: AdamW, or GaLore on the trained layers' 2-D weights.

Groups: the heads at `lr_heads`; the trained backbone parameters at `lr_backbone`. With
`optimizer: galore` the backbone's trained `nn.Linear` weights (every 2-D projection of the layers
`trainable_layers` opened: attention and MLP, whatever the architecture names them) form a GaLore
group (`training.teacher.galore`: rank `galore_rank`, projection refreshed every
`galore_update_gap` steps, update scaled by `galore_scale`, Adam's moments kept in the rank-r
subspace), and the backbone's other trained parameters (biases, norms) a plain AdamW group; GaLore
AdamW steps every group. The state saves and loads through `training.teacher.galore`'s helpers, so
an interrupted GaLore run resumes with its projectors.
"""

import torch
from torch import nn

OPTIMIZERS = ("adamw", "galore")


def _groups(model: nn.Module, config) -> tuple[list[dict], list[nn.Parameter]]:
    heads = list(model.heads.parameters())
    head_ids = {id(p) for p in heads}
    backbone = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": heads, "lr": config.lr_heads, "name": "heads"}]
    return groups, backbone


def galore_weights(model: nn.Module) -> list[nn.Parameter]:
    """The trained 2-D weights of the backbone's linear layers (the GaLore group)."""
    return [m.weight for m in model.backbone.modules()
            if isinstance(m, nn.Linear) and m.weight.requires_grad]


def build_optimizer(model: nn.Module, config) -> torch.optim.Optimizer:
    """AdamW over the heads and trained backbone, or GaLore AdamW (`config.optimizer`)."""
    groups, backbone = _groups(model, config)
    if config.optimizer == "adamw":
        if backbone:
            groups.insert(0, {"params": backbone, "lr": config.lr_backbone, "name": "backbone"})
        return torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    from training.teacher.galore import build_optimizer as galore_optimizer

    projected = galore_weights(model)
    if not projected:
        raise ValueError("optimizer galore needs trained linear layers in the backbone: set "
                         "trainable_layers to k > 0 (top k layers) or -1 (all)")
    chosen = {id(p) for p in projected}
    rest = [p for p in backbone if id(p) not in chosen]
    groups.insert(0, {"params": projected, "lr": config.lr_backbone, "name": "galore",
                      "rank": config.galore_rank, "update_proj_gap": config.galore_update_gap,
                      "scale": config.galore_scale, "proj_type": "std",
                      "weight_decay": config.weight_decay})
    if rest:
        groups.insert(1, {"params": rest, "lr": config.lr_backbone, "name": "backbone",
                          "weight_decay": config.weight_decay})
    for group in groups:
        group.setdefault("weight_decay", config.weight_decay)
    return galore_optimizer(groups, lr=config.lr_backbone, cpu_svd=True)


def state_dict(optimizer: torch.optim.Optimizer, config) -> dict:
    """The optimizer's state, GaLore projectors as plain tensors (loadable weights_only)."""
    optimizer = getattr(optimizer, "optimizer", optimizer)  # inside accelerate's wrapper
    if config.optimizer == "galore":
        from training.teacher.galore import optimizer_state

        return optimizer_state(optimizer)
    return optimizer.state_dict()


def load_state_dict(optimizer: torch.optim.Optimizer, state: dict, config) -> None:
    """Load what `state_dict` saved."""
    optimizer = getattr(optimizer, "optimizer", optimizer)
    if config.optimizer == "galore":
        from training.teacher.galore import load_optimizer_state

        load_optimizer_state(optimizer, state)
    else:
        optimizer.load_state_dict(state)
