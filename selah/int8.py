"""INT8 layers of the student, and building an INT8 student from a checkpoint's state dict.

Storage (safetensors): `<module>.weight_int8` int8 [out, in] and `<module>.weight_scale` float32
[out] with `weight = weight_int8 * weight_scale[:, None]`, `scale = max|w_row| / 127`, zero point
0; the embedding table the same way per row. Rounding is to nearest, or GPTQ's when the export
calibrates it on a few training songs (`training.quantize.calibrate`, `quantize_weight`): same
format, less error. Layers that read a LayerNorm output may also carry SmoothQuant factors
(`<module>.input_smooth` [in]: the stored weight is W * s and inputs are divided by s). A
mixture-of-experts backbone (gpt-oss) has its fused expert tensors in `selah.int8_experts`.

Runtime on CPU is torch's own int8 GEMM, `torch._int_mm` (int8 x int8 -> int32, exact), with
activations quantized per token (symmetric, one scale per row): the scheme torchao calls
"int8 dynamic activation, int8 weight". `activations="float"` keeps the int8 weights but runs
the matmul in float (weight-only INT8). Per-token scales make a window's output independent of
the other windows in the batch, which keeps results the same whatever a song is batched with.
On CUDA/MPS the int8 weights are dequantized once and the matmul runs in float. Why this kernel
and not another library's: `training.quantize.calibrate`'s module doc.
"""

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

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


def set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule called `name` (dotted) of `root` by `module`."""
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


def apply_layout(model: nn.Module, quantization: dict) -> nn.Module:
    """Swap in empty int8 modules where `quantization["modules"]` says, ready for a state dict."""
    from selah.int8_experts import Int8Experts

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
        set_module(model, name, module)
    return model


def build_int8_student(description: dict, quantization: dict, state: dict) -> nn.Module:
    """The INT8 student from its description, layout and state dict, in eval mode.

    Deterministic: the architecture is built under a fixed, forked seed (nothing random survives,
    the strict load below replaces every tensor) and dropout is zero.
    """
    from selah.student import student_from_description

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = student_from_description(description)
    apply_layout(model, quantization)
    model.load_state_dict(state, strict=True)
    return model.eval()


# A bf16 GEMM on the CPU is padded with zero rows to its floor (`selah.floors`: why, and how it
# is found), or to this many rows where no row counts were given to calibrate on.
MIN_BF16_ROWS = 1024


@functools.cache
def onednn_bf16_linear() -> bool:
    """Whether oneDNN's bf16 linear with fused post-ops and prepacked weights runs here: a torch
    built with mkldnn (the CPU builds of PyPI are) on a CPU with oneDNN's bf16 path (AVX-512
    BW/VL/DQ or AVX-NE-CONVERT). Elsewhere (an AVX2-only CPU, where packing a bf16 weight raises)
    a bf16 layer runs through `F.linear`."""
    mkldnn = torch.ops.mkldnn
    return (bool(torch.backends.mkldnn.is_available()) and hasattr(mkldnn, "_linear_pointwise")
            and bool(mkldnn._is_mkldnn_bf16_supported()))


def _version(tensor: torch.Tensor) -> int | None:
    """How many times `tensor` was changed in place (None for an inference tensor: not kept)."""
    try:
        return tensor._version
    except RuntimeError:
        return None


class DequantizedLinear(nn.Module):
    """A linear layer of the INT8 checkpoint run in `dtype`: the weight dequantized once (its
    SmoothQuant factors folded in), inputs cast to `dtype`, outputs back to the inputs' dtype.

    In bf16 on the CPU the GEMM is oneDNN's with the weight prepacked once (reordered to the
    kernel's blocked layout on first use instead of at every call), and it can take what follows
    it (`selah.fused`): with `activation` `"gelu"` the exact GELU, with `adds_residual` the
    residual passed to `forward`, both computed on the float32 accumulator (one rounding to bf16
    instead of two). Each GEMM has at least `min_rows` rows (zero rows added, then dropped; see
    `selah.floors.bf16_row_floor`), so that a row's result never depends on how many rows came
    with it."""

    def __init__(self, int8_linear: nn.Module | None, dtype: torch.dtype,
                 weight: torch.Tensor | None = None, bias: torch.Tensor | None = None):
        super().__init__()
        if int8_linear is not None:
            weight, bias = int8_linear.dequantized(), int8_linear.bias
            if int8_linear.input_smooth is not None:  # stored W * s for inputs x / s
                weight = weight / int8_linear.input_smooth.float().unsqueeze(0)
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight.to(dtype))
        self.register_buffer("bias", None if bias is None else bias.float().to(dtype))
        self.min_rows = MIN_BF16_ROWS if dtype == torch.bfloat16 else 0
        self.activation: str | None = None  # "gelu": this layer's output goes through GELU
        self.adds_residual = False  # True: `forward` takes a residual to add to the output
        self._packed: torch.Tensor | None = None  # oneDNN's layout of `weight`, made on first use
        self._packed_from: tuple = ()  # the weight it was made from (storage, version)

    @classmethod
    def stacked(cls, layers: Sequence["DequantizedLinear"]) -> "DequantizedLinear":
        """One layer computing `layers` (same inputs) side by side: their weights stacked by
        output, their outputs concatenated in that order."""
        weight = torch.cat([layer.weight for layer in layers])
        biases = [layer.bias for layer in layers]
        bias = None if any(b is None for b in biases) else torch.cat(biases)
        return cls(None, weight.dtype, weight, bias)

    def __getstate__(self) -> dict:  # a oneDNN tensor cannot be copied: the copy packs anew
        return {**self.__dict__, "_packed": None}

    def gemm(self, rows: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """`rows` [n, in] in the weight's dtype through the layer, then its `activation`, plus
        `residual` [n, out] where given."""
        on_cpu = rows.device.type == "cpu"
        if self.weight.dtype == torch.bfloat16 and on_cpu and onednn_bf16_linear():
            source = (self.weight.data_ptr(), _version(self.weight))
            if self._packed is None or self._packed_from != source:  # none yet, or a new weight
                self._packed = torch.ops.mkldnn._reorder_linear_weight(self.weight, MIN_BF16_ROWS)
                self._packed_from = source
            if residual is not None and self.activation is None:
                return torch.ops.mkldnn._linear_pointwise.binary(rows, residual, self._packed,
                                                                 self.bias, "add")
            out = torch.ops.mkldnn._linear_pointwise(
                rows, self._packed, self.bias, self.activation or "none", [],
                "none" if self.activation == "gelu" else "")
        else:
            out = F.linear(rows, self.weight, self.bias)
            out = F.gelu(out) if self.activation == "gelu" else out
        return out if residual is None else out + residual

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        rows = x.reshape(-1, x.size(-1)).to(self.weight.dtype)
        extra = None if residual is None else residual.reshape(-1, self.out_features).to(
            self.weight.dtype)
        short = self.min_rows - rows.size(0)
        if short > 0 and self.weight.device.type == "cpu":
            padded = None if extra is None else F.pad(extra, (0, 0, 0, short))
            out = self.gemm(F.pad(rows, (0, 0, 0, short)), padded)[:rows.size(0)]
        else:
            out = self.gemm(rows, extra)
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"dtype={self.weight.dtype}, min_rows={self.min_rows}, "
                f"activation={self.activation}, adds_residual={self.adds_residual}")


def cast_floats(model: nn.Module, dtype: torch.dtype) -> None:
    """Every float parameter and buffer of `model` in `dtype`, and the rows its int8 embedding
    tables return; the int8 tensors and their scales, and the expert tensors (gpt-oss, which keep
    their own INT8 path), stay as they are."""
    from selah.int8_experts import Int8Experts

    for module in model.modules():
        if isinstance(module, Int8Embedding):
            module.dtype = dtype
        if isinstance(module, (Int8Linear, Int8Embedding, Int8Experts)):
            continue
        for name, tensor in [*module.named_parameters(recurse=False),
                             *module.named_buffers(recurse=False)]:
            if tensor is not None and tensor.is_floating_point() and tensor.dtype != dtype:
                if isinstance(tensor, nn.Parameter):
                    tensor.data = tensor.data.to(dtype)
                else:
                    module._buffers[name] = tensor.to(dtype)


def apply_runtime(model: nn.Module, runtime: str, rows: Sequence[int] = ()) -> nn.Module:
    """Make `model` (an INT8 student, on its device) run as `runtime` (`selah.runtime`);
    returns it. `int8` and `dequantized` leave it as loaded; `int8-compiled` compiles its
    backbone with `torch.compile` (dynamic shapes; compiled on the first pass of each window
    length); `bf16` and `float32` replace each `Int8Linear` by a `DequantizedLinear`, and `bf16`
    runs the whole backbone in bf16 (LayerNorms, attention, embeddings; the pooling and heads
    stay float32), with the BERT family's layers fused where they can be (`selah.fused`) and
    each GEMM padded to its `selah.floors.bf16_row_floor` over `rows` (the row counts a pass
    can have; without them, `MIN_BF16_ROWS`). Expert tensors (gpt-oss) keep their own INT8
    path."""
    if runtime in ("int8", "dequantized"):
        return model
    if runtime == "int8-compiled":
        model.backbone = torch.compile(model.backbone, dynamic=True)
        return model
    if runtime not in ("bf16", "float32"):
        raise ValueError(f"unknown runtime {runtime!r}")
    dtype = torch.bfloat16 if runtime == "bf16" else torch.float32
    for name, module in list(model.named_modules()):
        if isinstance(module, Int8Linear):
            set_module(model, name, DequantizedLinear(module, dtype))
    if runtime == "bf16":
        from selah.floors import bf16_row_floor
        from selah.fused import fuse_bert_layers

        fuse_bert_layers(model.backbone)
        cast_floats(model.backbone, dtype)
        if rows:
            for module in model.modules():
                if isinstance(module, DequantizedLinear):
                    module.min_rows = bf16_row_floor(module, rows)
    return model
