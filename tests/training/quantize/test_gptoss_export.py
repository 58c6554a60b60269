"""The expert-aware INT8 export of a tiny random gpt-oss student, and serving it (CPU, seconds).

The student's float weights are float32 here (bf16 at real size); the comparisons are the export's
own: verdict agreement >= 99% and the largest probability difference, on its validation songs.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from selah.analyzers.gptoss import GPTOSSChristianAnalyzer
from selah.checkpoint import load_checkpoint
from selah.int8_experts import Int8Experts, quantize_experts
from tests.training.paths import SONGS
from training.data.readers import read_examples
from training.quantize.export import ExportError

REPO = Path(__file__).resolve().parents[2]


def test_expert_tensors_are_int8_per_expert_and_output_channel():
    weight = torch.randn(3, 16, 8)  # [E, in, out], as gpt-oss stores gate_up_proj
    weight[1, :, 2] *= 50  # one loud output channel of one expert keeps its own scale
    q, scale = quantize_experts(weight)
    assert q.dtype == torch.int8 and q.shape == (3, 8, 16) and scale.shape == (3, 8)
    assert torch.allclose(scale, weight.abs().amax(dim=1) / 127)
    restored = (q.float() * scale.unsqueeze(-1)).transpose(1, 2)
    assert (restored - weight).abs().max() <= scale.max() / 2 + 1e-6
    assert ((restored - weight).abs() <= scale.unsqueeze(1) / 2 + 1e-6).all()


def test_int8_experts_compute_what_the_float_experts_do(gptoss_student):
    from selah.student import load_student

    model, _, _ = load_student(gptoss_student)
    experts = model.backbone.layers[0].mlp.experts
    torch.manual_seed(0)
    hidden = torch.randn(10, experts.hidden_size)
    indices = torch.stack([torch.randperm(experts.num_experts)[:2] for _ in range(10)])
    weights = torch.rand(10, 2).softmax(-1)
    with torch.no_grad():
        expected = experts(hidden, indices, weights)
        for mode in ("int8", "float"):
            got = Int8Experts.from_float(experts, mode)(hidden, indices, weights)
            assert (got - expected).norm() / expected.norm() < 0.02, mode


def test_the_export_quantizes_the_experts_and_passes_its_checks(gptoss_checkpoint):
    manifest = json.loads((gptoss_checkpoint / "manifest.json").read_text())
    kinds = set(manifest["quantization"]["modules"].values())
    assert kinds == {"embedding", "linear", "experts"}
    sizes = manifest["sizes"]
    assert sizes["int8_share"] >= 0.95 and sizes["min_int8_share"] == 0.95
    assert set(sizes["by_kind"]["experts"]) == {"int8", "float32"}  # int8 weights, f32 scales
    agreement = manifest["agreement"]
    assert agreement["verdict_agreement"] >= 0.99 and agreement["songs"] == 6
    assert 0 <= agreement["max_probability_diff"] < 0.2
    assert manifest["prompt"] == "harmony" and manifest["pooling"] == "last_token"


def test_an_export_that_leaves_the_experts_float_is_refused(gptoss_student, tmp_path,
                                                            monkeypatch):
    from tests.checkpoints import export_checkpoint
    from training.quantize import calibrate as calib

    linear_only = calib.quantizable_modules

    def skip_experts(model):  # a Linear-walking quantizer: the fused experts stay float
        return {k: v for k, v in linear_only(model).items() if v != "experts"}

    monkeypatch.setattr(calib, "quantizable_modules", skip_experts)
    with pytest.raises(ExportError, match=r"INT8 holds .* under the required 95%.*experts"):
        export_checkpoint(gptoss_student, tmp_path / "out", calibration_songs=0)
    assert not (tmp_path / "out").exists()


def test_the_checkpoint_reloads_in_a_fresh_process_with_the_same_results(
        gptoss_checkpoint):
    from selah.inference import predict_songs

    songs = [e.song() for e in read_examples(SONGS)[0][:2]]
    model, featurizer, _, _ = load_checkpoint(gptoss_checkpoint)
    here = predict_songs(model, featurizer, songs, 2)
    code = ("import json, sys; from selah.checkpoint import load_checkpoint; "
            "from selah.inference import predict_songs; "
            "model, featurizer, _, _ = load_checkpoint(sys.argv[1]); "
            "print(json.dumps(predict_songs(model, featurizer, json.loads(sys.argv[2]), 2)))")
    done = subprocess.run([sys.executable, "-c", code, str(gptoss_checkpoint), json.dumps(songs)],
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=True)
    there = json.loads(done.stdout.strip().splitlines()[-1])
    assert [p["verdict"] for p in there] == [p["verdict"] for p in here]
    assert max(abs(a["verdict_probs"][v] - b["verdict_probs"][v]) for a, b in zip(here, there)
               for v in a["verdict_probs"]) < 1e-6


def test_the_http_api_serves_the_gptoss_checkpoint(gptoss_checkpoint, make_app):
    import hashlib

    settings = {"GPTOSS_MODEL_PATH": str(gptoss_checkpoint), "GPTOSS_DEVICE": "cpu"}
    assert GPTOSSChristianAnalyzer.preflight_config(settings)[0]
    client = make_app(ANALYZER_CLASS=GPTOSSChristianAnalyzer, **settings).test_client()
    song = read_examples(SONGS)[0][0].song()
    response = client.post("/api/analyze", json=song)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    sha = hashlib.sha256((gptoss_checkpoint / "manifest.json").read_bytes()).hexdigest()
    snapshot = body["configuration_snapshot"]
    assert snapshot["model_version"] == f"gptoss-{sha[:12]}"
    assert snapshot["model_id"] == "selah-tiny-random-gpt-oss-int8"
    assert body["error_message"] is None and 0 <= body["scoring_results"]["final_score"] <= 100
