"""INT8 for mixture-of-experts tensors, and the byte count that proves the export is INT8.

A quantizer that walks `nn.Linear` misses gpt-oss's experts: each layer keeps them as two fused
3-D `nn.Parameter`s of one module, `gate_up_proj` [E, H, 2I] and `down_proj` [E, I, H] (plus
biases [E, 2I] and [E, H]), and they are 90% of gpt-oss-20b's parameters. Such an "INT8" export is
still about 40 GB. `Int8Experts` replaces the module:

- storage per expert e, per output channel o, symmetric, zero point 0 (the `Int8Linear` scheme,
  one [out, in] matrix per expert): `gate_up_int8` int8 [E, 2I, H] with `gate_up_scale` float32
  [E, 2I], `down_int8` int8 [E, H, I] with `down_scale` float32 [E, H];
  `W[e][:, o] = int8[e, o, :] * scale[e, o]`, `scale = max |W[e][:, o]| / 127`. Biases stay float32.
- forward: the router is unchanged (float); each expert a token is routed to runs its two
  matmuls as `selah.int8` runs a Linear: the int8 GEMM with per-token activation scales
  on CPU (`activations: int8`), else the expert's weights dequantized for that call only (no
  float copy of the experts is kept: that would undo the saving). The clamped SwiGLU between them
  is gpt-oss's (`alpha` 1.702, `limit` 7).

`byte_report` counts the bytes of a state dict per module kind and dtype; `training.quantize.export`
refuses an export whose backbone holds less than 95% of its bytes as INT8.
"""

from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn

from selah.int8 import int8_linear, quantize_weight

EXPERT_TENSORS = ("gate_up_proj", "down_proj")


def is_fused_experts(module: nn.Module) -> bool:
    """Whether `module` holds fused 3-D expert tensors (`gate_up_proj` [E, H, 2I], ...)."""
    tensors = [getattr(module, name, None) for name in EXPERT_TENSORS]
    return all(isinstance(t, torch.Tensor) and t.dim() == 3 for t in tensors)


def quantize_experts(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-expert, per-output-channel int8 of a fused [E, in, out] tensor:
    `(q [E, out, in] int8, scale [E, out] float32)`, one expert at a time (its float32 copy is
    the only temporary)."""
    quantized, scales = [], []
    for expert in weight:
        q, scale = quantize_weight(expert.t())
        quantized.append(q)
        scales.append(scale)
    return torch.stack(quantized), torch.stack(scales)


class Int8Experts(nn.Module):
    """gpt-oss experts with int8 weights (see module doc); same call as `GptOssExperts`."""

    def __init__(self, num_experts: int, hidden: int, intermediate: int, alpha: float = 1.702,
                 limit: float = 7.0, activations: str = "int8"):
        super().__init__()
        self.num_experts, self.hidden_size, self.intermediate_size = num_experts, hidden, \
            intermediate
        self.alpha, self.limit, self.activations = alpha, limit, activations
        self.register_buffer("gate_up_int8", torch.zeros(num_experts, 2 * intermediate, hidden,
                                                         dtype=torch.int8))
        self.register_buffer("gate_up_scale", torch.ones(num_experts, 2 * intermediate))
        self.register_buffer("gate_up_bias", torch.zeros(num_experts, 2 * intermediate))
        self.register_buffer("down_int8", torch.zeros(num_experts, hidden, intermediate,
                                                      dtype=torch.int8))
        self.register_buffer("down_scale", torch.ones(num_experts, hidden))
        self.register_buffer("down_bias", torch.zeros(num_experts, hidden))

    @classmethod
    def like(cls, experts: nn.Module, activations: str = "int8") -> "Int8Experts":
        """An empty module with the shapes and SwiGLU constants of a float experts module."""
        num_experts, hidden, double = experts.gate_up_proj.shape
        return cls(num_experts, hidden, double // 2, getattr(experts, "alpha", 1.702),
                   getattr(experts, "limit", 7.0), activations)

    @classmethod
    def from_float(cls, experts: nn.Module, activations: str = "int8") -> "Int8Experts":
        """Quantize a float `GptOssExperts` (round to nearest, per expert and output channel)."""
        module = cls.like(experts, activations)
        with torch.no_grad():
            module.gate_up_int8, module.gate_up_scale = quantize_experts(experts.gate_up_proj)
            module.down_int8, module.down_scale = quantize_experts(experts.down_proj)
            module.gate_up_bias = experts.gate_up_proj_bias.detach().float().clone()
            module.down_bias = experts.down_proj_bias.detach().float().clone()
        return module

    def _linear(self, x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
        if self.activations == "int8" and x.device.type == "cpu":
            return int8_linear(x, q, scale, bias)
        weight = q.to(x.dtype) * scale.to(x.dtype).unsqueeze(1)  # this expert only, then freed
        return F.linear(x, weight, bias.to(x.dtype))

    def _apply_gate(self, gate_up: torch.Tensor) -> torch.Tensor:
        gate, up = gate_up[..., ::2], gate_up[..., 1::2]  # interleaved, as gpt-oss stores them
        gate = gate.clamp(max=self.limit)
        up = up.clamp(min=-self.limit, max=self.limit)
        return (up + 1) * (gate * torch.sigmoid(gate * self.alpha))

    def forward(self, hidden_states: torch.Tensor, router_indices: torch.Tensor,
                routing_weights: torch.Tensor) -> torch.Tensor:
        """hidden_states [T, H], router_indices [T, k], routing_weights [T, k] -> [T, H]."""
        out = torch.zeros_like(hidden_states)
        for expert in router_indices.unique().tolist():
            token, slot = torch.where(router_indices == expert)
            x = hidden_states[token]
            gated = self._apply_gate(self._linear(x, self.gate_up_int8[expert],
                                                  self.gate_up_scale[expert],
                                                  self.gate_up_bias[expert]))
            y = self._linear(gated, self.down_int8[expert], self.down_scale[expert],
                             self.down_bias[expert])
            out.index_add_(0, token, (y * routing_weights[token, slot, None]).to(out.dtype))
        return out

    def extra_repr(self) -> str:
        return (f"experts={self.num_experts}, hidden={self.hidden_size}, "
                f"intermediate={self.intermediate_size}, activations={self.activations}")


def _kind(key: str) -> str:
    if not key.startswith("backbone."):
        return key.split(".")[0]  # heads
    if "experts." in key:
        return "experts"
    if "embed" in key:
        return "embedding"
    if "_int8" in key or "_scale" in key or key.endswith((".weight", ".bias", "input_smooth")):
        parent = key.rsplit(".", 1)[0]
        return "attention" if ".self_attn." in parent or ".attention." in parent else "other"
    return "other"


def byte_report(state: dict[str, torch.Tensor]) -> dict:
    """Bytes of a state dict by module kind and dtype, and the INT8 share of the backbone's bytes
    (`int8_share`: int8 bytes / all backbone bytes, scales and float leftovers included; the heads
    are reported apart: they stay float by design)."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for key, tensor in state.items():
        table[_kind(key)][str(tensor.dtype).replace("torch.", "")] += \
            tensor.numel() * tensor.element_size()
    backbone = {kind: dict(dtypes) for kind, dtypes in table.items()
                if kind in ("experts", "embedding", "attention", "other")}
    total = sum(sum(d.values()) for d in backbone.values())
    int8 = sum(d.get("int8", 0) for d in backbone.values())
    return {"by_kind": {kind: dict(dtypes) for kind, dtypes in sorted(table.items())},
            "backbone_bytes": total, "backbone_int8_bytes": int8,
            "int8_share": int8 / total if total else 0.0,
            "total_bytes": sum(sum(d.values()) for d in table.values())}
