"""selah.int8: symmetric per-channel int8 weights, GPTQ rounding, the int8 GEMM and embedding."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selah.int8 import Int8Embedding, Int8Linear, int8_linear, quantize_weight
from tests.selah.cpu import needs_onednn_bf16


def test_weights_are_symmetric_per_output_channel():
    torch.manual_seed(0)
    weight = torch.randn(6, 10) * torch.arange(1, 7).unsqueeze(1)  # rows of different ranges
    weight[3] = 0.0
    q, scale = quantize_weight(weight)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32 and scale.shape == (6,)
    assert q.abs().max() <= 127
    live = [0, 1, 2, 4, 5]
    # The largest magnitude of each row maps onto +-127: symmetric, zero point 0.
    assert torch.equal(q[live].abs().amax(1), torch.full((5,), 127, dtype=torch.int8))
    assert torch.allclose(scale[live], weight[live].abs().amax(1) / 127)
    assert torch.equal(q[3], torch.zeros(10, dtype=torch.int8))
    error = (q.float() * scale.unsqueeze(1) - weight).abs()
    assert (error <= scale.unsqueeze(1) / 2 + 1e-6).all()  # round to nearest


def test_gptq_rounding_lowers_the_output_error_with_the_same_scales():
    torch.manual_seed(3)
    weight = torch.randn(24, 64)
    inputs = torch.randn(2000, 8) @ torch.randn(8, 64) + 0.1 * torch.randn(2000, 64)  # correlated
    hessian = inputs.t() @ inputs / len(inputs)
    q_rtn, scale_rtn = quantize_weight(weight)
    q_gptq, scale_gptq = quantize_weight(weight, hessian)
    assert torch.equal(scale_rtn, scale_gptq) and q_gptq.dtype == torch.int8
    assert q_gptq.abs().max() <= 127

    def output_error(q, scale):
        return (inputs @ (q.float() * scale.unsqueeze(1)).t() - inputs @ weight.t()).pow(2).mean()

    assert output_error(q_gptq, scale_gptq) < 0.5 * output_error(q_rtn, scale_rtn)


def test_int8_linear_is_close_to_float_and_batch_invariant():
    torch.manual_seed(0)
    linear = nn.Linear(48, 20)
    x = torch.randn(7, 5, 48)
    module = Int8Linear.from_float(linear)
    with torch.no_grad():
        reference, out = linear(x), module(x)
    assert out.shape == (7, 5, 20) and out.dtype == torch.float32
    assert (out - reference).abs().max() < 0.05 * reference.abs().max()
    # Each token has its own activation scale and int32 sums are exact: a row computed alone is
    # bit-identical to the same row computed in a batch.
    alone = int8_linear(x[2:3], module.weight_int8, module.weight_scale, module.bias)
    assert torch.equal(alone, out[2:3])


def test_float_activation_mode_is_the_dequantized_weight():
    torch.manual_seed(1)
    linear = nn.Linear(16, 4)
    module = Int8Linear.from_float(linear, activations="float")
    x = torch.randn(3, 16)
    expected = x @ module.dequantized().t() + linear.bias
    assert torch.allclose(module(x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="activations must be one of"):
        Int8Linear(4, 4, activations="int4")


def test_int8_embedding_looks_up_scaled_rows():
    torch.manual_seed(2)
    embedding = nn.Embedding(50, 8, padding_idx=0)
    module = Int8Embedding.from_float(embedding)
    ids = torch.tensor([[1, 2, 49], [0, 7, 7]])
    dequantized = module.weight_int8.float() * module.weight_scale.unsqueeze(1)
    assert torch.equal(module(ids), dequantized[ids])
    assert (module(ids) - embedding(ids)).abs().max() <= module.weight_scale.max() / 2 + 1e-6


def _pass_counts(step: int = 64, largest: int = 2048) -> tuple[int, ...]:
    return tuple(range(step, largest + 1, step))


@needs_onednn_bf16
@pytest.mark.parametrize("fused", [None, "gelu", "residual"])
@pytest.mark.parametrize("shape", [(384, 1536), (1536, 384), (96, 768)])
def test_a_bf16_gemm_row_is_the_same_whatever_the_row_count_from_its_floor(shape, fused):
    """Whatever floor oneDNN's kernels need on this CPU (AMX tiles reduce small GEMMs in another
    order; other CPUs may need none), every row count a pass can have, padded to the floor,
    gives each row the bits it gets in the largest pass, with a fused GELU or residual too."""
    from selah.floors import bf16_row_floor
    from selah.int8 import DequantizedLinear

    out_features, in_features = shape
    counts = _pass_counts()
    torch.manual_seed(2)
    module = DequantizedLinear(Int8Linear.from_float(nn.Linear(in_features, out_features)),
                               torch.bfloat16)
    module.activation = "gelu" if fused == "gelu" else None
    module.adds_residual = fused == "residual"
    floor = bf16_row_floor(module, counts)
    assert floor in counts
    assert bf16_row_floor(module, counts) == floor  # cached, same answer
    module.min_rows = floor
    x = torch.randn(counts[-1], in_features)
    residual = torch.randn(counts[-1], out_features) if module.adds_residual else None
    with torch.inference_mode():
        want = module(x, residual)
        for count in counts:
            got = module(x[:count], None if residual is None else residual[:count])
            assert torch.equal(got, want[:count]), (shape, count, floor)
        assert want.dtype == torch.float32  # outputs back in the inputs' dtype


@pytest.mark.parametrize("onednn", [pytest.param(True, marks=needs_onednn_bf16), False])
def test_a_layer_with_its_gelu_fused_gives_the_exact_gelu_within_bf16_rounding(onednn,
                                                                               monkeypatch):
    """Through oneDNN's prepacked kernel, or through F.linear where the CPU has no oneDNN bf16
    path (an AVX2-only CPU, where packing a bf16 weight raises): the same numbers."""
    from selah import int8
    from selah.int8 import DequantizedLinear

    if not onednn:
        monkeypatch.setattr(int8, "onednn_bf16_linear", lambda: False)
    torch.manual_seed(3)
    module = DequantizedLinear(Int8Linear.from_float(nn.Linear(64, 96)), torch.bfloat16)
    module.activation = "gelu"
    x = torch.randn(256, 64).bfloat16()
    exact = F.gelu(F.linear(x.float(), module.weight.float(), module.bias.float()))
    with torch.inference_mode():
        fused = module(x).float()
    assert (module._packed is not None) == onednn  # the kernel the case is about ran
    assert (exact < -0.1).any()  # inputs where a missing GELU would show
    tolerance = exact.abs().clamp(min=1.0) * 2.0 ** -7  # within two bf16 steps
    assert ((fused - exact).abs() <= tolerance).all()


def test_the_bf16_runtime_runs_the_backbone_in_bf16_and_keeps_int8_tables():
    from selah.int8 import DequantizedLinear, cast_floats

    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
    model.add_module("table", Int8Embedding.from_float(nn.Embedding(5, 8)))
    model.add_module("projection", DequantizedLinear(Int8Linear.from_float(nn.Linear(8, 4)),
                                                     torch.bfloat16))
    cast_floats(model, torch.bfloat16)
    assert model[0].weight.dtype == model[1].bias.dtype == torch.bfloat16
    assert model.table.weight_int8.dtype == torch.int8
    assert model.table.weight_scale.dtype == torch.float32  # scales keep their precision
    assert model.table(torch.tensor([1, 3])).dtype == torch.bfloat16
    assert model.projection.min_rows == 1024  # no row counts given: the conservative floor
