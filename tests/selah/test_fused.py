"""selah.fused: the bf16 runtime's fusions of BERT layers compute what the layers computed."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selah.checkpoint import load_checkpoint
from selah.fused import FusedOutput, FusedSelfAttention, fuse_bert_layers
from selah.int8 import DequantizedLinear, Int8Linear, apply_runtime
from tests.selah.cpu import needs_onednn_bf16


def _bf16_layer(in_features: int, out_features: int, seed: int) -> DequantizedLinear:
    torch.manual_seed(seed)
    return DequantizedLinear(Int8Linear.from_float(nn.Linear(in_features, out_features)),
                             torch.bfloat16)


def test_stacked_layers_give_each_layer_s_own_outputs_side_by_side():
    layers = [_bf16_layer(48, 32, seed) for seed in range(3)]
    stacked = DequantizedLinear.stacked(layers)
    assert (stacked.out_features, stacked.in_features) == (96, 48)
    x = torch.randn(128, 48).bfloat16()
    with torch.inference_mode():
        together = stacked(x)
        apart = torch.cat([layer(x) for layer in layers], dim=-1)
    # The same dot products over the same 48 inputs: within one bf16 step of each other.
    assert torch.allclose(together.float(), apart.float(), rtol=2.0 ** -7, atol=1e-2)


def test_a_layer_that_adds_the_residual_adds_it_within_bf16_rounding():
    layer = _bf16_layer(64, 32, seed=4)
    x, residual = torch.randn(256, 64).bfloat16(), torch.randn(256, 32).bfloat16()
    exact = F.linear(x.float(), layer.weight.float(), layer.bias.float()) + residual.float()
    layer.adds_residual = True
    with torch.inference_mode():
        added = layer(x, residual).float()
    assert (residual.abs() > 0.5).any()  # a residual large enough to show if it were dropped
    assert ((added - exact).abs() <= exact.abs().clamp(min=1.0) * 2.0 ** -7).all()


@pytest.fixture
def students(int8_checkpoint):
    """The tiny INT8 student (BERT, 2 layers) under the float32 and the bf16 runtimes."""
    model = load_checkpoint(int8_checkpoint)[0]
    return apply_runtime(copy.deepcopy(model), "float32"), apply_runtime(model, "bf16",
                                                                          rows=(64, 128))


@needs_onednn_bf16
def test_every_bert_layer_is_fused_and_computes_what_the_float_layers_compute(students):
    reference, fused = students
    layers = fused.backbone.encoder.layer
    assert len(layers) == fused.backbone.config.num_hidden_layers
    for layer in layers:
        assert isinstance(layer.attention.self, FusedSelfAttention)
        assert isinstance(layer.attention.output, FusedOutput)
        assert isinstance(layer.output, FusedOutput)
        assert layer.attention.output.dense.adds_residual and layer.output.dense.adds_residual
        assert layer.intermediate.dense.activation == "gelu"
        assert isinstance(layer.intermediate.intermediate_act_fn, nn.Identity)
        assert not layer.attention.self.training  # the model's eval mode, kept
    ids = torch.randint(5, 90, (3, 24))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # a padded window
    with torch.inference_mode():
        want = reference.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        got = fused.backbone(input_ids=ids, attention_mask=mask).last_hidden_state.float()
    for window in range(3):
        assert F.cosine_similarity(got[window].flatten(), want[window].flatten(), dim=0) > 0.999


@needs_onednn_bf16
def test_a_fused_window_gets_the_same_bits_alone_and_beside_others(students):
    _, fused = students
    ids = torch.randint(5, 90, (4, 32))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        together = fused.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        alone = fused.backbone(input_ids=ids[2:3], attention_mask=mask[2:3]).last_hidden_state
    assert torch.equal(together[2:3], alone)


@needs_onednn_bf16
def test_layers_fuse_once_and_a_fused_output_refuses_training(students):
    _, fused = students
    assert fuse_bert_layers(fused.backbone) == 0  # nothing left to fuse
    output = fused.backbone.encoder.layer[0].output
    output.train()
    with pytest.raises(RuntimeError, match="inference only"):
        output(torch.zeros(1, 2, output.dense.in_features),
               torch.zeros(1, 2, output.dense.out_features))


def test_a_backbone_with_int8_layers_is_left_as_it_is(int8_checkpoint):
    model = load_checkpoint(int8_checkpoint)[0]  # the int8 runtime: Int8Linear, not bf16
    assert fuse_bert_layers(model.backbone) == 0
    assert not any(isinstance(m, (FusedSelfAttention, FusedOutput)) for m in model.modules())


def test_a_new_weight_is_packed_anew():
    layer = _bf16_layer(32, 16, seed=5)
    x = torch.randn(64, 32).bfloat16()

    def expected() -> torch.Tensor:
        return F.linear(x.float(), layer.weight.float(), layer.bias.float())

    with torch.inference_mode():
        layer(x)  # packs the weight
        layer.weight.mul_(2)  # in place: the same storage, a new version
        doubled = layer(x).float()
        assert torch.allclose(doubled, expected(), rtol=2.0 ** -7, atol=0.05)
        layer.weight = torch.zeros_like(layer.weight)  # another tensor altogether
        assert torch.equal(layer(x), layer.bias.expand(64, 16))
