"""GaLore fine-tuning of the tiny random Qwen3 teacher: outputs, refusals, exact resume."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from training.config import ConfigError
from training.teacher.config import TeacherConfig, TeacherError
from training.teacher.model import refuse_sharding, resolve_model
from training.teacher.trainer import TeacherTrainer, main


def final_weights(out) -> dict:
    return load_file(str(Path(out) / "final" / "model.safetensors"))


def test_a_run_fine_tunes_and_writes_a_loadable_teacher(teacher_config, tiny_teacher):
    config = teacher_config()
    summary = TeacherTrainer(config).run()
    out = Path(config.out)
    assert not summary["interrupted"] and summary["global_step"] == 3  # 9 songs, 2 x 2 a step
    (record,) = summary["history"]
    assert {"train_loss", "val_loss", "val_verdict_accuracy", "val_verdict_macro_f1"} <= set(record)
    assert 0.0 <= record["val_verdict_accuracy"] <= 1.0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3]
    meta = json.loads((out / "final" / "teacher.json").read_text())
    assert meta["format"] == "selah-teacher-1" and meta["max_length"] == 448
    before = load_file(str(tiny_teacher / "model.safetensors"))
    after = final_weights(out)
    assert not torch.equal(before["model.layers.0.self_attn.q_proj.weight"],
                           after["model.layers.0.self_attn.q_proj.weight"])  # GaLore group
    assert not torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(out / "final").config.model_type == "qwen3"


def test_an_interrupted_run_resumes_from_its_saved_step(teacher_config, tmp_path):
    whole = teacher_config(out=str(tmp_path / "whole"))
    TeacherTrainer(whole).run()
    parts = teacher_config(out=str(tmp_path / "parts"), stop_after_steps=2)
    first = TeacherTrainer(parts).run()
    assert first["interrupted"] and first["global_step"] == 2
    assert not (tmp_path / "parts" / "final").exists()
    saved = torch.load(tmp_path / "parts" / "last" / "trainer_state.pt", weights_only=True)
    assert saved["global_step"] == 2 and saved["step_in_epoch"] == 2
    second = TeacherTrainer(teacher_config(out=str(tmp_path / "parts"))).run()
    assert second["global_step"] == 3 and not second["interrupted"]
    steps = [json.loads(line)["step"]
             for line in (tmp_path / "parts" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # continued at step 3, not from the start
    a, b = final_weights(tmp_path / "whole"), final_weights(tmp_path / "parts")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_resume_with_other_settings_is_refused(teacher_config, tmp_path):
    TeacherTrainer(teacher_config(stop_after_steps=1)).run()
    with pytest.raises(TeacherError, match="other settings.*lr"):
        TeacherTrainer(teacher_config(lr=5e-4)).run()


def test_a_setting_added_after_the_run_started_counts_as_its_default(teacher_config):
    config = teacher_config(stop_after_steps=1)
    TeacherTrainer(config).run()
    path = Path(config.out) / "last" / "trainer_state.pt"
    state = torch.load(path, weights_only=True)
    del state["config"]["train_embeddings"]  # as written before the option existed
    torch.save(state, path)
    assert TeacherTrainer(teacher_config()).run()["global_step"] == 3


def test_layerwise_steps_every_weight_without_accumulation(teacher_config, tiny_teacher):
    config = teacher_config(layerwise=True, grad_accumulation=1, max_grad_norm=0.0,
                            batch_size=3, save_every=0)
    summary = TeacherTrainer(config).run()
    assert summary["global_step"] == 3
    before = load_file(str(tiny_teacher / "model.safetensors"))
    after = final_weights(config.out)
    changed = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert "model.layers.1.mlp.down_proj.weight" in changed and "lm_head.weight" in changed


def test_frozen_embeddings_stay_put_while_the_projections_train(teacher_config, tiny_teacher):
    config = teacher_config(train_embeddings=False, save_every=0)
    TeacherTrainer(config).run()
    before = load_file(str(tiny_teacher / "model.safetensors"))
    after = final_weights(config.out)
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["model.layers.1.self_attn.o_proj.weight"],
                           after["model.layers.1.self_attn.o_proj.weight"])


@pytest.mark.parametrize("overrides, message", [
    ({"layerwise": True, "grad_accumulation": 8}, "grad_accumulation 1"),
    ({"layerwise": True, "grad_accumulation": 1, "max_grad_norm": 1.0}, "max_grad_norm 0"),
])
def test_combinations_galore_cannot_run_are_refused(overrides, message, tiny_teacher):
    from training.config import check_config

    config = TeacherConfig(data="x.jsonl", model=str(tiny_teacher), **overrides)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


@pytest.mark.parametrize("kind", ["DistributedType.FSDP", "DistributedType.DEEPSPEED"])
def test_sharded_training_is_refused_with_what_to_use(kind):
    with pytest.raises(TeacherError, match="DDP"):
        refuse_sharding(SimpleNamespace(distributed_type=kind))
    refuse_sharding(SimpleNamespace(distributed_type="DistributedType.MULTI_GPU"))  # DDP is fine


def test_bad_device_and_missing_data_fail_before_loading(teacher_config):
    with pytest.raises(TeacherError, match="not found"):
        TeacherTrainer(teacher_config(data="no/such/file.jsonl")).setup()
    if not torch.cuda.is_available():
        with pytest.raises(TeacherError, match="no CUDA"):
            TeacherTrainer(teacher_config(device="cuda")).setup()


def test_packaged_and_gguf_folders_resolve(tmp_path):
    folder = tmp_path / "gguf"
    folder.mkdir()
    (folder / "model.Q4.gguf").write_bytes(b"")
    assert resolve_model(str(folder)) == (str(folder), "model.Q4.gguf")
    assert resolve_model("Qwen/Qwen3-8B") == ("Qwen/Qwen3-8B", None)


def test_main_prints_the_summary(teacher_config, capsys):
    config = teacher_config()
    assert main(["--data", config.data, "--out", config.out, "--model", config.model,
                 "--max-length", "448", "--answer-reserve", "96", "--epochs", "1",
                 "--batch-size", "4", "--grad-accumulation", "4", "--galore-rank", "4",
                 "--precision", "fp32", "--device", "cpu", "--holdout", "0.2",
                 "--no-progress", "--num-threads", "1", "--eval-songs", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["global_step"] == 1 and printed["history"][0]["epoch"] == 1
