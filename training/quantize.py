"""INT8 quantization of a student: symmetric per-output-channel int8 weights with float scales.

    python -m training.quantize --student DIR [--out DIR] [--windows 4] [--repeats 5]

What is quantized: every `nn.Linear` of the backbone (attention q/k/v/output, feed-forward,
pooler) and its word-embedding table, which is half of MiniLM's bytes (30522 x 384); without it
the INT8 file cannot get under a third of the float one. Position and token-type embeddings,
LayerNorms, biases and the heads stay float: the heads are 0.1% of the bytes and turn the pooled
vector straight into the verdict, so they keep full precision. A mixture-of-experts backbone
(gpt-oss) also has its fused 3-D expert tensors quantized, per expert and output channel
(`training.int8_experts`); its router stays float.

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
the matmul in float (weight-only INT8; `training.export` falls back to it when the int8 GEMM
changes verdicts). Measured by `scripts/bench_int8_libraries.py` on all-MiniLM-L6-v2, 4 windows
of 256 tokens, one thread, taking turns on a busy 2-core machine (median): float32 325 ms, this
227 ms (pooled-vector cosine to float >= 0.992); torch.ao's `quantized.dynamic.Linear` 165 ms,
but deprecated in torch 2.13 (warns at import, slated for removal) and per-tensor activation
scales lose much more (cosine 0.94); optimum-quanto int8 weights 362 ms, slower than float on CPU
(it dequantizes the weight on every call). Per-token scales also make a window's output
independent of the other windows in the batch, which keeps results the same whatever a song is
batched with. On CUDA/MPS the int8 weights are dequantized once and the matmul runs in float.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training.config import ConfigError, option, parse_config

PROG = "python -m training.quantize"
# The manifest's quantization method per activation mode (weights are int8 in both).
QUANT_METHODS = {"int8": "int8-w8a8-dynamic-per-token", "float": "int8-weight-only"}
ACTIVATION_MODES = ("int8", "float")


def quantize_weight(weight: torch.Tensor, hessian: torch.Tensor | None = None,
                    damp: float = 0.01, block: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: `(q [rows, cols] int8 in [-127, 127], scale [rows] float32)`,
    `scale = max|row| / 127`.

    Without `hessian` each weight is rounded to nearest. With `hessian` (E[x x^T] of the layer's
    inputs, [cols, cols]) the rounding is GPTQ's (Frantar et al., 2023, "GPTQ: Accurate
    Post-Training Quantization for Generative Pre-trained Transformers", Algorithm 1): columns are
    rounded in order and each column's rounding error is spread over the columns not yet rounded
    through the inverse Hessian, which minimises the error of the layer's output on the
    calibration inputs instead of the error of each weight. Same format, same scales.
    """
    weight = weight.detach().float()
    scale = weight.abs().amax(dim=1) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row: any scale
    if hessian is None:
        q = torch.round(weight / scale.unsqueeze(1)).clamp_(-127, 127).to(torch.int8)
        return q, scale
    return _gptq(weight, hessian, scale, damp, block), scale


def _gptq(weight: torch.Tensor, hessian: torch.Tensor, scale: torch.Tensor, damp: float,
          block: int) -> torch.Tensor:
    w = weight.clone()
    h = hessian.double().clone()
    dead = torch.diagonal(h) == 0  # inputs that are always zero: their weights do not matter
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h.diagonal().add_(damp * h.diagonal().mean())  # dampening keeps the Cholesky stable
    # Upper Cholesky factor of H^-1: row i holds how column i's error moves the later columns.
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)),
                                 upper=True).float()
    q = torch.zeros_like(w, dtype=torch.int8)
    for start in range(0, w.size(1), block):
        end = min(start + block, w.size(1))
        chunk, errors, h_chunk = w[:, start:end].clone(), torch.zeros(w.size(0), end - start), \
            hinv[start:end, start:end]
        for i in range(end - start):
            rounded = torch.round(chunk[:, i] / scale).clamp_(-127, 127)
            q[:, start + i] = rounded.to(torch.int8)
            errors[:, i] = (chunk[:, i] - rounded * scale) / h_chunk[i, i]
            chunk[:, i:] -= errors[:, i:i + 1] * h_chunk[i:i + 1, i:]
        w[:, end:] -= errors @ hinv[start:end, end:]  # the block's errors, onto later blocks
    return q


@dataclass
class Calibration:
    """Input statistics of every backbone Linear: `hessians[name]` = E[x x^T] [in, in] (GPTQ)
    and `absmax[name]` = max |x| per input channel [in] (SmoothQuant)."""

    hessians: dict[str, torch.Tensor]
    absmax: dict[str, torch.Tensor]


def calibrate(model: nn.Module, batches, token_stride: int = 4) -> Calibration:
    """Input statistics of every backbone Linear over `batches` (`training.inference.featurize`
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


def int8_linear(x: torch.Tensor, weight_int8: torch.Tensor, weight_scale: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
    """`x @ W.T + b` with x quantized per token: x [..., in] float, weight_int8 [out, in]."""
    shape = x.shape
    rows = x.reshape(-1, shape[-1]).float()
    x_scale = rows.abs().amax(dim=1, keepdim=True).clamp_(min=1e-12).div_(127.0)  # [T, 1]
    x_int8 = torch.round(rows / x_scale).to(torch.int8)
    # int32 accumulation is exact: |sum| <= 127 * 127 * in_features, far below 2**31. The
    # rescaling is done in place, one factor at a time: an outer product of the two scales
    # [T, out] would cost as much memory traffic as the GEMM itself.
    out = torch._int_mm(x_int8, weight_int8.t()).float().mul_(weight_scale).mul_(x_scale)
    if bias is not None:
        out.add_(bias)
    return out.reshape(*shape[:-1], -1).to(x.dtype)


class Int8Linear(nn.Module):
    """A Linear layer holding int8 weights and per-output-channel scales (see module doc)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activations: str = "int8", smoothed: bool = False):
        super().__init__()
        if activations not in ACTIVATION_MODES:
            raise ValueError(f"activations must be one of {ACTIVATION_MODES}, got {activations!r}")
        self.in_features, self.out_features = in_features, out_features
        self.activations = activations
        self.register_buffer("weight_int8",
                             torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        # SmoothQuant factors [in]: the stored weight is W * s and inputs are divided by s.
        self.register_buffer("input_smooth", torch.ones(in_features) if smoothed else None)
        self._float_weight: torch.Tensor | None = None

    @classmethod
    def from_float(cls, linear: nn.Linear, activations: str = "int8",
                   hessian: torch.Tensor | None = None,
                   smooth: torch.Tensor | None = None) -> "Int8Linear":
        """Quantize a float Linear: GPTQ rounding when given its input Hessian, SmoothQuant
        when given smoothing factors."""
        module = cls(linear.in_features, linear.out_features, linear.bias is not None, activations,
                     smooth is not None)
        weight = linear.weight.detach().float()
        if smooth is not None:
            module.input_smooth = smooth.float().clone()
            weight = weight * smooth.unsqueeze(0)
            if hessian is not None:  # moments of x / s
                hessian = hessian / smooth.unsqueeze(0) / smooth.unsqueeze(1)
        module.weight_int8, module.weight_scale = quantize_weight(weight, hessian)
        if linear.bias is not None:
            module.bias = linear.bias.detach().float().clone()
        return module

    def dequantized(self) -> torch.Tensor:
        """The float weight [out, in] the int8 one stands for."""
        return self.weight_int8.float() * self.weight_scale.unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """int8 GEMM on CPU; dequantized float matmul elsewhere or with float activations."""
        if self.input_smooth is not None:
            x = x / self.input_smooth.to(x.dtype)
        if self.activations == "int8" and x.device.type == "cpu":
            return int8_linear(x, self.weight_int8, self.weight_scale, self.bias)
        weight = self._float_weight
        if weight is None or weight.device != x.device or weight.dtype != x.dtype:
            # Dequantized once per device and dtype (the int8 tensors never change after load).
            weight = self._float_weight = self.dequantized().to(x.dtype)
        return F.linear(x, weight, None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"activations={self.activations}")


class Int8Embedding(nn.Module):
    """An embedding table stored as int8 rows with one float scale per row."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        self.dtype = dtype  # of the rows it returns: the backbone's (bf16 for gpt-oss)
        self.register_buffer("weight_int8",
                             torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(num_embeddings))

    @classmethod
    def from_float(cls, embedding: nn.Embedding) -> "Int8Embedding":
        """Quantize a float embedding table row by row."""
        module = cls(embedding.num_embeddings, embedding.embedding_dim, embedding.padding_idx,
                     embedding.weight.dtype)
        module.weight_int8, module.weight_scale = quantize_weight(embedding.weight)
        return module

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows [..., dim] in `dtype`: gather int8 rows, then scale each by its own factor."""
        rows = F.embedding(ids, self.weight_int8).float()
        return (rows * self.weight_scale[ids].unsqueeze(-1)).to(self.dtype)


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


def quantizable_modules(model: nn.Module) -> dict[str, str]:
    """`{module name: "linear" | "embedding" | "experts"}` of what `quantize_student` converts,
    in order."""
    from training.int8_experts import is_fused_experts

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
    from training.int8_experts import Int8Experts

    modules = quantizable_modules(model)
    smoothed = []
    for name, kind in modules.items():
        float_module = model.get_submodule(name)
        if kind == "embedding":
            _set_module(model, name, Int8Embedding.from_float(float_module))
            continue
        if kind == "experts":
            _set_module(model, name, Int8Experts.from_float(float_module, activations))
            continue
        hessian = calibration.hessians.get(name) if calibration else None
        smooth = None
        if calibration and activations == "int8" and smooth_alpha > 0 and \
                name in calibration.absmax and name.endswith(smooth_layers):
            smooth = smoothing_factors(calibration.absmax[name], float_module.weight, smooth_alpha)
            smoothed.append(name)
        _set_module(model, name, Int8Linear.from_float(float_module, activations, hessian, smooth))
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


def apply_layout(model: nn.Module, quantization: dict) -> nn.Module:
    """Swap in empty int8 modules where `quantization["modules"]` says, ready for a state dict."""
    from training.int8_experts import Int8Experts

    activations = quantization.get("activation_mode", "int8")
    smoothed = set((quantization.get("smoothing") or {}).get("modules") or ())
    for name, kind in quantization["modules"].items():
        float_module = model.get_submodule(name)
        if kind == "embedding":
            module = Int8Embedding(float_module.num_embeddings, float_module.embedding_dim,
                                   float_module.padding_idx, float_module.weight.dtype)
        elif kind == "experts":
            module = Int8Experts.like(float_module, activations)
        elif kind == "linear":
            module = Int8Linear(float_module.in_features, float_module.out_features,
                                float_module.bias is not None, activations,
                                name in smoothed)
        else:
            raise ValueError(f"unknown quantized module kind {kind!r} for {name}")
        _set_module(model, name, module)
    return model


def build_int8_student(description: dict, quantization: dict, state: dict) -> nn.Module:
    """The INT8 student from its description, layout and state dict, in eval mode.

    Deterministic: the architecture is built under a fixed, forked seed (nothing random survives,
    the strict load below replaces every tensor) and dropout is zero.
    """
    from training.student import student_from_description

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = student_from_description(description)
    apply_layout(model, quantization)
    model.load_state_dict(state, strict=True)
    return model.eval()


def state_bytes(state: dict) -> int:
    """Bytes of the tensors of a state dict."""
    return sum(t.numel() * t.element_size() for t in state.values())


def save_int8_state(model: nn.Module, path: str | Path) -> int:
    """Write the quantized model's state dict as safetensors; returns the file size in bytes."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})
    Path(path).chmod(0o644)  # safetensors writes 0600; the service may run as another user
    return Path(path).stat().st_size


def time_forward(model: nn.Module, windows: int, length: int, repeats: int,
                 vocab: int = 1000) -> float:
    """Median seconds of one forward over `windows` random windows of `length` tokens."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(100, vocab, (windows, length), generator=generator)
    mask = torch.ones_like(ids)
    index = torch.zeros(windows, dtype=torch.long)
    times = []
    with torch.inference_mode():
        model(ids, mask, index, 1)  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            model(ids, mask, index, 1)
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


@dataclass
class QuantizeConfig:
    """Settings of `python -m training.quantize`."""

    student: str = option("", "float student folder (student.json, model.safetensors, tokenizer)")
    out: str | None = option(None, "write the INT8 model.safetensors and quantization.json here")
    activations: str = option("int8", "int8: per-token int8 GEMM on CPU; float: weight-only",
                              choices=ACTIVATION_MODES)
    windows: int = option(4, "windows per timed forward pass", minimum=1, maximum=256)
    repeats: int = option(5, "timed forward passes (the median is reported)", minimum=1)

    def validate(self) -> None:
        """--student is required."""
        if not self.student:
            raise ConfigError("missing --student")


def run(config: QuantizeConfig) -> dict:
    """Quantize the student, time float against INT8 and report sizes; write them if `out`."""
    from training.student import load_student

    model, featurizer, _description = load_student(config.student)
    float_ms = time_forward(model, config.windows, featurizer.max_length, config.repeats,
                            len(featurizer.tokenizer)) * 1000
    float_bytes = state_bytes(model.state_dict())
    info = quantize_student(model, config.activations)
    int8_ms = time_forward(model, config.windows, featurizer.max_length, config.repeats,
                           len(featurizer.tokenizer)) * 1000
    int8_bytes = state_bytes(model.state_dict())
    report = {"float_bytes": float_bytes, "int8_bytes": int8_bytes,
              "ratio": round(int8_bytes / float_bytes, 4), "windows": config.windows,
              "window_tokens": featurizer.max_length, "float_ms": round(float_ms, 1),
              "int8_ms": round(int8_ms, 1), "threads": torch.get_num_threads(),
              "quantization": {k: v for k, v in info.items() if k != "modules"},
              "quantized_modules": len(info["modules"])}
    if config.out:
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        report["file_bytes"] = save_int8_state(model, out / "model.safetensors")
        (out / "quantization.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    return report


def main(argv: list[str] | None = None) -> int:
    """`python -m training.quantize ...`: prints the size and speed report as JSON."""
    config = parse_config(QuantizeConfig, argv, PROG, __doc__.splitlines()[0])
    print(json.dumps(run(config), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
