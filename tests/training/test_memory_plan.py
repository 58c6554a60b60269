"""The memory planner's arithmetic and its refusals (no model is built)."""

import json

import pytest

from training.memory_plan import (MODELS, Settings, activation_bytes_per_token, count_parameters,
                                  main, plan)


@pytest.mark.parametrize("model, total, backbone", [
    ("gpt-oss-20b", 20.91e9, 20.34e9),  # model card: 21 B; the LM head is 201,088 x 2,880
    ("qwen3-8b", 8.19e9, 7.57e9),  # model card: 8.2 B
])
def test_parameter_counts_come_from_the_config(model, total, backbone):
    counts = count_parameters(MODELS[model])
    assert counts.total == pytest.approx(total, rel=2e-3)
    assert counts.backbone == pytest.approx(backbone, rel=2e-3)
    assert counts.lm_head == MODELS[model]["vocab_size"] * MODELS[model]["hidden_size"]


def test_gpt_oss_is_mostly_experts_and_they_scale_with_the_config():
    config = dict(MODELS["gpt-oss-20b"])
    counts = count_parameters(config)
    assert counts.mlp / counts.total > 0.9
    doubled = count_parameters({**config, "num_local_experts": 64})
    per_expert = 2880 * 5760 + 5760 + 2880 * 2880 + 2880 + 2880 + 1  # gate_up, down, router row
    assert doubled.mlp - counts.mlp == 24 * 32 * per_expert


def test_activations_grow_with_the_window_only_through_attention_scores():
    config = MODELS["qwen3-8b"]
    grow = activation_bytes_per_token(config, 2048) - activation_bytes_per_token(config, 1024)
    assert grow == 2 * 2 * config["num_attention_heads"] * 1024


def test_serving_int8_halves_the_weights_and_fits_a_mac():
    result = plan(MODELS["gpt-oss-20b"], "m1-max-64gb", ["student-heads", "serve"], Settings())
    heads, serve = result["stages"]["student-heads"], result["stages"]["serve"]
    weights = heads["components_gib"]["weights bf16"]
    assert serve["components_gib"]["INT8 weights"] == pytest.approx(weights / 2, rel=0.01)
    assert heads["fits"] and serve["fits"] and result["usable_gib"] == pytest.approx(48 * 0.9)


def test_a_plan_that_cannot_fit_is_refused_with_what_to_change(capsys):
    code = main(["--model", "gpt-oss-20b", "--device", "m1-max-64gb",
                 "--stages", "student-full,serve"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "| student-full |" in out and "| NO |" in out
    assert "refused: student-full" in err and "LoRA" in err and "heads only" in err
    assert "serve" not in err


def test_a_plan_that_fits_exits_zero_and_reads_a_config_file(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(MODELS["qwen3-8b"]))
    assert main(["--model", str(path), "--device", "h100", "--stages",
                 "teacher-label,serve", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["stages"]) == {"teacher-label", "serve"}


def test_unknown_stages_and_models_fail_with_the_valid_names(capsys):
    with pytest.raises(SystemExit):
        main(["--model", "gpt-oss-20b", "--device", "h100", "--stages", "distill"])
    assert "valid: teacher-galore" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", "nope", "--device", "h100"])
    assert "gpt-oss-20b, qwen3-8b or a config.json" in capsys.readouterr().err
