"""Quantizing a float student to INT8: symmetric per-output-channel int8 weights, float scales.

The layers and the storage format are `selah.int8`; this module calibrates and converts.

What is quantized: every `nn.Linear` of the backbone (attention q/k/v/output, feed-forward,
pooler) and its word-embedding table, which is half of MiniLM's bytes (30522 x 384); without it
the INT8 file cannot get under a third of the float one. Position and token-type embeddings,
LayerNorms, biases and the heads stay float: the heads are 0.1% of the bytes and turn the pooled
vector straight into the verdict, so they keep full precision. A mixture-of-experts backbone
(gpt-oss) also has its fused 3-D expert tensors quantized, per expert and output channel
(`selah.int8_experts`); its router stays float.

Storage (safetensors): `<module>.weight_int8` int8 [out, in] and `<module>.weight_scale` float32
[out] with `weight = weight_int8 * weight_scale[:, None]`, `scale = max|w_row| / 127`, zero point
0; the embedding table the same way per row. Rounding is to nearest, or GPTQ's when the export
calibrates it on a few training songs (`calibrate`, `quantize_weight`): same format, less error.
For the int8 GEMM the layers that read a LayerNorm output also get SmoothQuant factors
(`<module>.input_smooth` [in]: the stored weight is W * s and inputs are divided by s), which move
LayerNorm's outlier channels from the activations into the weights.

Runtime on CPU is torch's own int8 GEMM, `torch._int_mm` (int8 x int8 -> int32, exact), with
activations quantized per token (symmetric, one scale per row): the scheme torchao calls
"int8 dynamic activation, int8 weight". `activations="float"` keeps the int8 weights but runs
the matmul in float (weight-only INT8; `training.quantize.export` falls back to it when the int8
GEMM changes verdicts). Measured by `scripts/bench_int8_libraries.py` on all-MiniLM-L6-v2, 4 windows
of 256 tokens, one thread, taking turns on a busy 2-core machine (median): float32 325 ms, this
227 ms (pooled-vector cosine to float >= 0.992); torch.ao's `quantized.dynamic.Linear` 165 ms,
but deprecated in torch 2.13 (warns at import, slated for removal) and per-tensor activation
scales lose much more (cosine 0.94); optimum-quanto int8 weights 362 ms, slower than float on CPU
(it dequantizes the weight on every call). Per-token scales also make a window's output
independent of the other windows in the batch, which keeps results the same whatever a song is
batched with. On CUDA/MPS the int8 weights are dequantized once and the matmul runs in float.
"""

from dataclasses import dataclass

import torch
from torch import nn

from selah.int8 import QUANT_METHODS, Int8Embedding, Int8Linear, set_module


@dataclass
class Calibration:
    """Input statistics of every backbone Linear: `hessians[name]` = E[x x^T] [in, in] (GPTQ)
    and `absmax[name]` = max |x| per input channel [in] (SmoothQuant)."""

    hessians: dict[str, torch.Tensor]
    absmax: dict[str, torch.Tensor]


def calibrate(model: nn.Module, batches, token_stride: int = 4) -> Calibration:
    """Input statistics of every backbone Linear over `batches` (`selah.inference.featurize`
    outputs) run through the float model. Only real tokens count (padding is masked out of
    everything downstream), every `token_stride`-th of them."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    absmax: dict[str, torch.Tensor] = {}
    state: dict = {}
    seen: dict[int, tuple] = {}  # q, k and v read the same tensor: one product for the three

    def record(name: str):
        def hook(_module, inputs, _output):
            x = inputs[0]
            if id(x) not in seen:
                mask = state["mask"]
                rows = x[mask.bool()] if x.dim() == 3 and x.shape[:2] == mask.shape else x
                rows = rows.reshape(-1, rows.size(-1)).float()
                peak = rows.abs().amax(dim=0)
                rows = rows[::token_stride]
                seen[id(x)] = (rows.t() @ rows, rows.size(0), peak, x)  # x kept: its id stays
            product, n, peak, _ = seen[id(x)]
            sums[name] = sums.get(name, 0) + product.double()
            counts[name] = counts.get(name, 0) + n
            absmax[name] = torch.maximum(absmax[name], peak) if name in absmax else peak
        return hook

    hooks = [module.register_forward_hook(record(name))
             for name, module in model.named_modules()
             if name.startswith("backbone.") and isinstance(module, nn.Linear)]
    try:
        with torch.inference_mode():
            for batch in batches:
                state["mask"] = batch["attention_mask"]
                seen.clear()
                model(batch["input_ids"], batch["attention_mask"], batch["song_index"],
                      batch["n_songs"])
    finally:
        for handle in hooks:
            handle.remove()
    return Calibration({name: (sums[name] / max(counts[name], 1)).float() for name in sums},
                       absmax)


def smoothing_factors(absmax: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
    """SmoothQuant's per-input-channel factors (Xiao et al., 2023, "SmoothQuant: Accurate and
    Efficient Post-Training Quantization for Large Language Models", eq. 4):
    `s_j = max|X_j|^alpha / max|W_:,j|^(1 - alpha)`. The layer computes (x / s) @ (W * s)^T, the
    same product, with the activation outliers moved into the weights, which quantize per output
    channel and take them better. Channels never active keep s = 1."""
    x_peak = absmax.float()
    w_peak = weight.detach().float().abs().amax(dim=0).clamp(min=1e-5)
    factors = x_peak.clamp(min=1e-5).pow(alpha) / w_peak.pow(1 - alpha)
    return torch.where(x_peak > 0, factors.clamp(min=1e-5), torch.ones_like(factors))


def quantizable_modules(model: nn.Module) -> dict[str, str]:
    """`{module name: "linear" | "embedding" | "experts"}` of what `quantize_student` converts,
    in order."""
    from selah.int8_experts import is_fused_experts

    backbone = model.backbone
    embedding = backbone.get_input_embeddings()
    found = {}
    for name, module in model.named_modules():
        if not name.startswith("backbone."):
            continue
        if module is embedding:
            found[name] = "embedding"
        elif is_fused_experts(module):
            found[name] = "experts"
        elif isinstance(module, nn.Linear):
            found[name] = "linear"
    return found


# The Linear layers of a BERT-family encoder that read a LayerNorm output, whose outlier channels
# are what hurts per-token activation scales. On a trained MiniLM student, smoothing these
# halved the largest verdict-probability change; smoothing every layer helped less.
SMOOTHED_LAYERS = ("attention.self.query", "attention.self.key", "attention.self.value",
                   "intermediate.dense")


def quantize_student(model: nn.Module, activations: str = "int8",
                     calibration: Calibration | None = None, smooth_alpha: float = 0.0,
                     smooth_layers: tuple[str, ...] = SMOOTHED_LAYERS) -> dict:
    """Convert the student in place (see module doc); returns the quantization description.

    With `calibration` (from `calibrate`) the Linear layers get GPTQ rounding and, with int8
    activations and `smooth_alpha` > 0, the layers named by `smooth_layers` (suffixes) get
    SmoothQuant factors of that migration strength."""
    from selah.int8_experts import Int8Experts

    modules = quantizable_modules(model)
    smoothed = []
    for name, kind in modules.items():
        float_module = model.get_submodule(name)
        if kind == "embedding":
            set_module(model, name, Int8Embedding.from_float(float_module))
            continue
        if kind == "experts":
            set_module(model, name, Int8Experts.from_float(float_module, activations))
            continue
        hessian = calibration.hessians.get(name) if calibration else None
        smooth = None
        if calibration and activations == "int8" and smooth_alpha > 0 and \
                name in calibration.absmax and name.endswith(smooth_layers):
            smooth = smoothing_factors(calibration.absmax[name], float_module.weight, smooth_alpha)
            smoothed.append(name)
        set_module(model, name, Int8Linear.from_float(float_module, activations, hessian, smooth))
    info = quantization_info(modules, activations, calibration is not None)
    info["smoothing"] = ({"method": "SmoothQuant (Xiao et al. 2023)", "alpha": smooth_alpha,
                          "modules": smoothed} if smoothed else None)
    return info


def quantization_info(modules: dict[str, str], activations: str, gptq: bool = False) -> dict:
    """The manifest's `quantization` block for these converted modules."""
    return {
        "rounding": ("GPTQ (calibrated on training songs, Frantar et al. 2023)" if gptq
                     else "round to nearest"),
        "method": QUANT_METHODS[activations],
        "library": f"torch {torch.__version__.split('+')[0]} (torch._int_mm)",
        "weights": "int8, symmetric, per output channel (zero point 0), float32 scales",
        "embedding": "int8, symmetric, per row, float32 scales",
        "activations": ("int8, dynamic, symmetric, per token" if activations == "int8"
                        else "float (weights dequantized at run time)"),
        "activation_mode": activations,
        "float_modules": "heads, LayerNorms, position and token-type embeddings, biases",
        "modules": modules,
        **({"experts": "fused expert tensors: int8 per expert and output channel, float32 "
                       "scales (round to nearest); router and expert biases float"}
           if "experts" in modules.values() else {}),
    }
