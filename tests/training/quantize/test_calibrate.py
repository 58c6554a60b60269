"""training.quantize: calibration (GPTQ moments, SmoothQuant), converting a student, the command."""

import json

import pytest
import torch
from torch import nn

from selah import int8
from selah.int8 import Int8Embedding, Int8Linear
from training.quantize import calibrate as calib
from training.quantize import run as qrun


def test_calibration_collects_input_moments_of_real_tokens(tiny_student):
    from selah.inference import featurize
    from selah.student import load_student

    model, featurizer, _ = load_student(tiny_student)
    batch = featurize(featurizer, [{"title": "T", "artist": "A", "lyrics": "short song"}])
    calibration = calib.calibrate(model, [batch], token_stride=1)
    hessians = calibration.hessians
    assert set(calibration.absmax) == set(hessians)
    assert set(hessians) == {n for n, k in calib.quantizable_modules(model).items()
                             if k == "linear"}
    query = hessians["backbone.encoder.layer.0.attention.self.query"]
    assert query.shape == (32, 32) and torch.allclose(query, query.t(), atol=1e-5)
    assert torch.equal(query, hessians["backbone.encoder.layer.0.attention.self.key"])
    # Only the real tokens count: the padded window gives the moments of its unpadded prefix.
    n = int(batch["attention_mask"].sum())
    short = {k: (v[:, :n] if torch.is_tensor(v) and v.dim() == 2 else v) for k, v in batch.items()}
    again = calib.calibrate(model, [short], token_stride=1).hessians
    assert torch.allclose(again["backbone.encoder.layer.1.output.dense"],
                          hessians["backbone.encoder.layer.1.output.dense"], atol=1e-4)


def test_smoothing_moves_activation_outliers_into_the_weights():
    torch.manual_seed(4)
    linear = nn.Linear(32, 16)
    x = torch.randn(400, 32)
    x[:, 5] *= 60.0  # an outlier channel, as LayerNorm outputs have
    factors = calib.smoothing_factors(x.abs().amax(0), linear.weight, alpha=0.5)
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


@pytest.fixture
def student(tiny_student):
    from selah.student import load_student

    return load_student(tiny_student)


def test_quantize_student_converts_linears_and_the_word_embeddings(student):
    model, featurizer, description = student
    float_bytes = qrun.state_bytes(model.state_dict())
    info = calib.quantize_student(model)
    kinds = info["modules"]
    assert kinds["backbone.embeddings.word_embeddings"] == "embedding"
    assert sum(kind == "linear" for kind in kinds.values()) == 2 * 6 + 1  # 6 per layer, pooler
    assert not any(isinstance(m, nn.Linear) for m in model.backbone.modules())
    assert all(isinstance(head, nn.Linear) for head in model.heads.values())  # heads stay float
    assert isinstance(model.backbone.get_input_embeddings(), Int8Embedding)
    assert qrun.state_bytes(model.state_dict()) <= 0.35 * float_bytes


def test_int8_student_predicts_like_the_float_one_and_reloads_identically(student, tmp_path):
    from safetensors.torch import load_file

    from selah.inference import forward_songs

    model, featurizer, description = student
    songs = [{"title": "Morning", "artist": "Band", "lyrics": "Grace that found me " * 20},
             {"title": "Road", "artist": "Band", "lyrics": "The long grey rain keeps falling"}]
    reference = forward_songs(model, featurizer, songs)["verdict"].softmax(-1)
    info = calib.quantize_student(model)
    logits = forward_songs(model, featurizer, songs)
    assert (logits["verdict"].softmax(-1) - reference).abs().max() < 0.05

    qrun.save_int8_state(model, tmp_path / "model.safetensors")
    state = load_file(str(tmp_path / "model.safetensors"))
    assert state["backbone.encoder.layer.0.attention.self.query.weight_int8"].dtype == torch.int8
    first = int8.build_int8_student(description, info, state)
    second = int8.build_int8_student(description, info, state)
    for name, value in forward_songs(first, featurizer, songs).items():
        assert torch.equal(value, logits[name])
        assert torch.equal(value, forward_songs(second, featurizer, songs)[name])


def test_a_state_dict_that_does_not_fit_is_refused(student):
    model, _featurizer, description = student
    info = calib.quantize_student(model)
    state = dict(model.state_dict())
    state.pop("backbone.pooler.dense.weight_scale")
    with pytest.raises(RuntimeError, match="weight_scale"):
        int8.build_int8_student(description, info, state)


def test_command_reports_size_and_speed(tiny_student, tmp_path, capsys):
    assert qrun.main(["--student", str(tiny_student), "--out", str(tmp_path / "q"),
                          "--windows", "2", "--repeats", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ratio"] <= 0.35 and report["int8_ms"] > 0 and report["float_ms"] > 0
    assert (tmp_path / "q" / "model.safetensors").stat().st_size == report["file_bytes"]
    assert json.loads((tmp_path / "q" / "quantization.json").read_text())["modules"]
