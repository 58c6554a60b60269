"""LoRA adapters on the student's backbone (PEFT), and the plain weights they merge into.

Training options (`DistillConfig.adapter`), applied to the layers `trainable_layers` selects (the
top k, or all with -1):

- `none`: the selected layers train in full (or only the heads with `trainable_layers: 0`);
- `lora-attention`: LoRA on the attention projections (q/k/v/o) of those layers;
- `lora-experts`: LoRA on gpt-oss's fused expert tensors `mlp.experts.gate_up_proj` [E, H, 2I]
  and `mlp.experts.down_proj` [E, I, H], through PEFT's `target_parameters` (they are
  `nn.Parameter`s of one module, not `nn.Linear`s, so `target_modules` cannot reach them). PEFT
  gives each expert its own rank-r pair: A [E * r, in], B [out, E * r];
- `lora-all`: both.

With an adapter every pretrained backbone weight is frozen (the final norm and attention sinks
too): only the LoRA matrices and the heads train, so the frozen bottom layers can still be cached
(`training.distill.features`). `peft.inject_adapter_in_model` injects the adapters in place, without
a `PeftModel` wrapper, so the student keeps its shape. `plain_state_dict` gives the weights with
each adapter merged (W + scale * B A) under the backbone's own names, which is what a student folder
stores: loading it needs no PEFT.
"""

import torch
from torch import nn

from selah.deps import require

ADAPTERS = ("none", "lora-attention", "lora-experts", "lora-all")
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
EXPERT_PARAMETERS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")


def lora_targets(backbone: nn.Module, adapter: str, layers: list[int]) -> tuple[list, list]:
    """`(target_modules, target_parameters)`: full names under `backbone` for the given layers."""
    from training.distill.features import layer_list

    stack = layer_list(backbone)
    prefix = next(name for name, module in backbone.named_modules() if module is stack)
    modules, parameters = [], []
    for index in layers:
        layer = f"{prefix}.{index}"
        if adapter in ("lora-attention", "lora-all"):
            found = [f"{layer}.{name}" for name, module in stack[index].named_modules()
                     if isinstance(module, nn.Linear) and name.endswith(ATTENTION_PROJECTIONS)]
            if not found:
                raise ValueError(f"layer {index} of {type(backbone).__name__} has no attention "
                                 f"projections named {', '.join(ATTENTION_PROJECTIONS)}")
            modules += found
        if adapter in ("lora-experts", "lora-all"):
            names = {name for name, _ in stack[index].named_parameters()}
            missing = [p for p in EXPERT_PARAMETERS if p not in names]
            if missing:
                raise ValueError(f"lora on experts needs fused expert tensors ({', '.join(missing)}"
                                 f" missing in layer {index} of {type(backbone).__name__}); it is "
                                 "for gpt-oss backbones")
            parameters += [f"{layer}.{p}" for p in EXPERT_PARAMETERS]
    return modules, parameters


def apply_adapter(model: nn.Module, adapter: str, layers: list[int], rank: int = 8,
                  alpha: float = 16.0) -> int:
    """Freeze the backbone and inject LoRA (rank `rank`, scale alpha / rank) into `layers`;
    returns the number of trainable adapter parameters. The heads keep training."""
    if adapter not in ADAPTERS:
        raise ValueError(f"adapter must be one of {', '.join(ADAPTERS)}, got {adapter!r}")
    if adapter == "none":
        return 0
    if not layers:
        raise ValueError(f"adapter {adapter} needs trained layers (trainable_layers > 0 or -1)")
    peft = require("peft", f"the {adapter} adapter")
    modules, parameters = lora_targets(model.backbone, adapter, layers)
    model.backbone.requires_grad_(False)
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none",
                             target_modules=modules or [], target_parameters=parameters or None)
    peft.inject_adapter_in_model(config, model.backbone)
    model.heads.requires_grad_(True)
    return sum(p.numel() for n, p in model.backbone.named_parameters() if "lora_" in n)


def _lora_layers(module: nn.Module):
    """`(name, layer)` of every PEFT LoRA layer under `module` (none when PEFT is absent)."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return []
    return [(name, layer) for name, layer in module.named_modules()
            if isinstance(layer, LoraLayer)]


def has_adapters(model: nn.Module) -> bool:
    """Whether LoRA adapters are injected anywhere in `model`."""
    return bool(_lora_layers(model))


def _plain_name(name: str) -> str:
    return ".".join(part for part in name.split(".") if part != "base_layer")


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """`model.state_dict()` with every LoRA adapter merged into the tensor it adapts, under the
    names the model has without adapters (no `base_layer`, no `lora_*`). Without adapters it is
    the state dict itself. Merged tensors are new (sum in float32, cast back); nothing in the
    model changes."""
    layers = _lora_layers(model)
    state = model.state_dict()
    if not layers:
        return state
    deltas: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, layer in layers:
            target = f"{_plain_name(name)}.{getattr(layer, 'parameter_name', 'weight')}"
            for adapter in layer.active_adapters:
                if adapter in layer.lora_A:
                    delta = layer.get_delta_weight(adapter).float()
                    deltas[target] = deltas[target] + delta if target in deltas else delta
    plain = {}
    for key, value in state.items():
        if ".lora_" in key:
            continue
        name = _plain_name(key)
        plain[name] = (value.float() + deltas.pop(name)).to(value.dtype) if name in deltas \
            else value
    if deltas:
        raise RuntimeError(f"adapted tensors not found in the state dict: {sorted(deltas)}")
    return plain


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors that train (adapters and heads), by their names in `model` (for resuming:
    everything else is the pretrained backbone, reloaded unchanged)."""
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters()
            if p.requires_grad}
