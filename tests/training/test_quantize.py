"""INT8 quantization: symmetric per-channel weights, the int8 GEMM, the quantized student."""

import json

import pytest
import torch
from torch import nn

from tests.checkpoint_fixtures import tiny_student  # noqa: F401 - fixture
from training import quantize
from training.quantize import Int8Embedding, Int8Linear, int8_linear, quantize_weight


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


def test_calibration_collects_input_moments_of_real_tokens(tiny_student):  # noqa: F811
    from training.inference import featurize
    from training.student import load_student

    model, featurizer, _ = load_student(tiny_student)
    batch = featurize(featurizer, [{"title": "T", "artist": "A", "lyrics": "short song"}])
    calibration = quantize.calibrate(model, [batch], token_stride=1)
    hessians = calibration.hessians
    assert set(calibration.absmax) == set(hessians)
    assert set(hessians) == {n for n, k in quantize.quantizable_modules(model).items()
                             if k == "linear"}
    query = hessians["backbone.encoder.layer.0.attention.self.query"]
    assert query.shape == (32, 32) and torch.allclose(query, query.t(), atol=1e-5)
    assert torch.equal(query, hessians["backbone.encoder.layer.0.attention.self.key"])
    # Only the real tokens count: the padded window gives the moments of its unpadded prefix.
    n = int(batch["attention_mask"].sum())
    short = {k: (v[:, :n] if torch.is_tensor(v) and v.dim() == 2 else v) for k, v in batch.items()}
    again = quantize.calibrate(model, [short], token_stride=1).hessians
    assert torch.allclose(again["backbone.encoder.layer.1.output.dense"],
                          hessians["backbone.encoder.layer.1.output.dense"], atol=1e-4)


def test_smoothing_moves_activation_outliers_into_the_weights():
    torch.manual_seed(4)
    linear = nn.Linear(32, 16)
    x = torch.randn(400, 32)
    x[:, 5] *= 60.0  # an outlier channel, as LayerNorm outputs have
    factors = quantize.smoothing_factors(x.abs().amax(0), linear.weight, alpha=0.5)
    assert factors[5] == factors.max()
    plain = Int8Linear.from_float(linear)
    smooth = Int8Linear.from_float(linear, smooth=factors)
    assert torch.equal(smooth.input_smooth, factors)
    with torch.no_grad():
        reference = linear(x)
        error_plain = (plain(x) - reference).pow(2).mean()
        error_smooth = (smooth(x) - reference).pow(2).mean()
    assert error_smooth < 0.5 * error_plain
    assert set(smooth.state_dict()) == {"weight_int8", "weight_scale", "bias", "input_smooth"}


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


@pytest.fixture
def student(tiny_student):  # noqa: F811 - the fixture imported above
    from training.student import load_student

    return load_student(tiny_student)


def test_quantize_student_converts_linears_and_the_word_embeddings(student):
    model, featurizer, description = student
    float_bytes = quantize.state_bytes(model.state_dict())
    info = quantize.quantize_student(model)
    kinds = info["modules"]
    assert kinds["backbone.embeddings.word_embeddings"] == "embedding"
    assert sum(kind == "linear" for kind in kinds.values()) == 2 * 6 + 1  # 6 per layer, pooler
    assert not any(isinstance(m, nn.Linear) for m in model.backbone.modules())
    assert all(isinstance(head, nn.Linear) for head in model.heads.values())  # heads stay float
    assert isinstance(model.backbone.get_input_embeddings(), Int8Embedding)
    assert quantize.state_bytes(model.state_dict()) <= 0.35 * float_bytes


def test_int8_student_predicts_like_the_float_one_and_reloads_identically(student, tmp_path):
    from safetensors.torch import load_file

    from training.inference import forward_songs

    model, featurizer, description = student
    songs = [{"title": "Morning", "artist": "Band", "lyrics": "Grace that found me " * 20},
             {"title": "Road", "artist": "Band", "lyrics": "The long grey rain keeps falling"}]
    reference = forward_songs(model, featurizer, songs)["verdict"].softmax(-1)
    info = quantize.quantize_student(model)
    logits = forward_songs(model, featurizer, songs)
    assert (logits["verdict"].softmax(-1) - reference).abs().max() < 0.05

    quantize.save_int8_state(model, tmp_path / "model.safetensors")
    state = load_file(str(tmp_path / "model.safetensors"))
    assert state["backbone.encoder.layer.0.attention.self.query.weight_int8"].dtype == torch.int8
    first = quantize.build_int8_student(description, info, state)
    second = quantize.build_int8_student(description, info, state)
    for name, value in forward_songs(first, featurizer, songs).items():
        assert torch.equal(value, logits[name])
        assert torch.equal(value, forward_songs(second, featurizer, songs)[name])


def test_a_state_dict_that_does_not_fit_is_refused(student):
    model, _featurizer, description = student
    info = quantize.quantize_student(model)
    state = dict(model.state_dict())
    state.pop("backbone.pooler.dense.weight_scale")
    with pytest.raises(RuntimeError, match="weight_scale"):
        quantize.build_int8_student(description, info, state)


def test_command_reports_size_and_speed(tiny_student, tmp_path, capsys):  # noqa: F811
    assert quantize.main(["--student", str(tiny_student), "--out", str(tmp_path / "q"),
                          "--windows", "2", "--repeats", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ratio"] <= 0.35 and report["int8_ms"] > 0 and report["float_ms"] > 0
    assert (tmp_path / "q" / "model.safetensors").stat().st_size == report["file_bytes"]
    assert json.loads((tmp_path / "q" / "quantization.json").read_text())["modules"]
