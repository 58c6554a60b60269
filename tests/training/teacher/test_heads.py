"""The classification-head teacher on the tiny BERT and the twelve written songs: cross-fitting,
calibration, views, resuming, and the files the student reads."""

import json
from pathlib import Path

import pytest
import torch

from tests.training.paths import SONGS, TINY_YAML
from training.config import ConfigError, check_config
from training.data.readers import assign_splits, read_examples
from training.data.views import parent_id
from training.distill.targets import read_teacher_labels
from training.teacher.heads import HeadsTeacher, HeadsTeacherConfig, fit_sets, main

FOLDS = 3


@pytest.fixture
def teacher_config(tiny_bert, tmp_path):
    def build(**overrides) -> HeadsTeacherConfig:
        flags = f"--backbone {tiny_bert} --trainable-layers 0 --epochs 2 --select-metric last"
        values = dict(data=str(SONGS), out=str(tmp_path / "teacher"), recipe=str(TINY_YAML),
                      members=[f"a: {flags} --seed 0", f"b: {flags} --seed 1 --lr-heads 0.05"],
                      folds=FOLDS, views=1, feature_cache=str(tmp_path / "features"),
                      progress=False)
        values.update(overrides)
        config = HeadsTeacherConfig(**values)
        check_config(config)
        return config

    return build


def read_lines(path: str) -> list[dict]:
    """The records of a labels file (its header left out)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines()[1:]]


def test_fit_sets_are_every_fold_then_every_pair():
    assert fit_sets(3) == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]


def test_every_soft_label_comes_from_fits_that_never_saw_the_song(teacher_config):
    config = teacher_config()
    report = HeadsTeacher(config).run()
    out = config.out
    examples, _ = read_examples(SONGS)
    split = assign_splits(examples, FOLDS)
    dev = {e.song_id for e in examples if split[e.song_id] != "holdout"}
    holdout = {e.song_id for e in examples if split[e.song_id] == "holdout"}

    shipped = read_teacher_labels(f"{out}/labels.jsonl")
    assert shipped.provenance["teacher"] == "heads: a + b"
    assert set(shipped.provenance["temperatures"]) >= {"verdict", "themes"}
    lines = read_lines(f"{out}/labels.jsonl")
    views = {r["song_id"] for r in lines if "#view" in r["song_id"]}
    assert {r["song_id"] for r in lines} == dev | holdout | views and views
    for record in lines:
        song = parent_id(record["song_id"])
        if song in holdout:
            assert record["provenance"]["fit"] == f"mean of the {FOLDS} fits (hold-out)"
        else:
            assert record["provenance"]["fit"] == f"fold {split[song][4:]} held out"
        if "#view" in record["song_id"]:
            assert record["provenance"]["view_of"] == song
    for k in range(FOLDS):
        cv = read_lines(f"{out}/labels-fold{k}.jsonl")
        assert {parent_id(r["song_id"]) for r in cv} == dev
        for record in cv:
            fold = int(split[parent_id(record["song_id"])][4:])
            held = {fold, k}
            assert record["provenance"]["fit"] == \
                f"folds {'+'.join(str(j) for j in sorted(held))} held out"
        read_teacher_labels(f"{out}/labels-fold{k}.jsonl")
    assert len(report["per_fold"]) == FOLDS and report["holdout"]["n"] == len(holdout)
    assert 0.0 <= report["mean"]["ece"] <= 1.0
    assert set(report["member_fold_accuracy"]) == {"a", "b"}
    assert "| **mean of folds** |" in Path(out, "report.md").read_text()


def test_a_rerun_resumes_from_the_fits_on_disk(teacher_config, capsys):
    config = teacher_config(members=[teacher_config().members[0]], views=0)
    HeadsTeacher(config).run()
    fits = sorted((p.name, p.stat().st_mtime_ns) for p in
                  (Path(config.out) / "fits" / "a").glob("*.pt"))
    assert len(fits) == len(fit_sets(FOLDS))
    capsys.readouterr()
    assert main(["--data", config.data, "--out", config.out, "--recipe", config.recipe,
                 "--members", config.members[0], "--folds", str(FOLDS), "--views", "0",
                 "--feature-cache", config.feature_cache, "--no-progress"]) == 0
    again = sorted((p.name, p.stat().st_mtime_ns) for p in
                   (Path(config.out) / "fits" / "a").glob("*.pt"))
    assert again == fits
    assert "Teacher: a" in capsys.readouterr().out


def test_the_lexical_member_is_averaged_in(teacher_config):
    pytest.importorskip("sklearn")
    config = teacher_config(members=[teacher_config().members[0]], tfidf=True)
    report = HeadsTeacher(config).run()
    fits = sorted(p.name for p in (Path(config.out) / "fits" / "tfidf").glob("*.pt"))
    assert len(fits) == len(fit_sets(3))
    labels = read_teacher_labels(f"{config.out}/labels.jsonl")
    assert labels.provenance["teacher"] == "heads: a + tfidf"
    assert labels.provenance["members"]["tfidf"][0].startswith("word ")
    assert set(report["member_fold_accuracy"]) == {"a", "tfidf"}
    saved = torch.load(Path(config.out, "fits", "tfidf", "0.pt"), weights_only=True)
    assert 0.0 <= saved["val_metrics"]["verdict_accuracy"] <= 1.0
    stamps = {p: p.stat().st_mtime_ns for p in (Path(config.out) / "fits").rglob("*.pt")}
    HeadsTeacher(config).run()  # resumes: no fit is run again
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@pytest.mark.parametrize("members, message", [
    ([], "members is required"),
    (["no colon here"], "must read 'NAME: --flag"),
    (["a: --epochs 1", "a: --epochs 2"], "names must differ"),
])
def test_bad_member_lists_are_refused(members, message):
    with pytest.raises(ConfigError, match=message):
        check_config(HeadsTeacherConfig(data="x", out="y", members=members))


def test_a_member_may_not_take_the_lexical_members_name():
    check_config(HeadsTeacherConfig(data="x", out="y", members=["tfidf: --epochs 1"]))
    with pytest.raises(ConfigError, match="lexical member"):
        check_config(HeadsTeacherConfig(data="x", out="y", members=["tfidf: --epochs 1"],
                                        tfidf=True))


def test_one_autocast_setting_overrides_every_members_own(teacher_config, tiny_bert):
    flags = f"--backbone {tiny_bert} --trainable-layers 0 --epochs 1"
    mixed = [f"a: {flags} --mixed-precision bf16", f"b: {flags} --mixed-precision no"]
    with pytest.raises(ConfigError, match="share device and mixed_precision"):
        HeadsTeacher(teacher_config(members=mixed)).setup()
    teacher = HeadsTeacher(teacher_config(members=mixed, mixed_precision="no"))
    teacher.setup()
    assert {r.mixed_precision for r in teacher.recipes.values()} == {"no"}
    assert all(flags[-2:] == ["--mixed-precision", "no"]  # what the labels' provenance records
               for flags in teacher.member_flags().values())
    with pytest.raises(ConfigError, match="mixed_precision must be one of"):
        teacher_config(mixed_precision="fp8")


def test_the_student_cross_validates_on_its_folds_labels(teacher_config, signals_cache,
                                                          tiny_bert, tmp_path):
    from training.distill.crossval import main as crossval

    config = teacher_config(members=[teacher_config().members[0]])
    HeadsTeacher(config).run()
    out = tmp_path / "cv"
    argv = ["--config", str(TINY_YAML), "--backbone", str(tiny_bert), "--data", str(SONGS),
            "--folds", str(FOLDS), "--out", str(out), "--epochs", "1", "--views", "1",
            "--teacher-labels", f"{config.out}/labels-fold{{fold}}.jsonl", "--no-baseline",
            "--signals-cache", str(signals_cache), "--no-progress"]
    assert crossval(argv) == 0
    report = json.loads((out / "crossval.json").read_text())
    for fold in report["per_fold"]:
        assert fold["teacher_labels"] == f"{config.out}/labels-fold{fold['fold']}.jsonl"
        figures = fold["figures"]
        assert figures["agreement"]["n"] == figures["student"]["n"] > 0
        assert 0.0 <= figures["agreement"]["plan"] <= figures["agreement"]["verdict"] <= 1.0
        assert set(figures["student"]) >= {"ece", "concerns_micro_f1", "recall"}
    assert set(report["mean_figures"]) == {"student", "teacher", "agreement"}
    table = (out / "crossval.md").read_text()
    assert "| **mean** |" in table and "| joint |" in table
    fitted = json.loads((out / "decoding.json").read_text())
    assert fitted["score_sigma"] > 0 and fitted["verdict_temperature"] > 0
    assert (out / "fold0" / "val_logits.pt").is_file()


def test_a_stacked_teacher_never_fits_on_the_fold_it_labels_for(teacher_config, monkeypatch):
    from training.teacher import stacking

    seen = []
    fit = stacking.fit

    def spy(members, examples, heads):
        seen.append({e.song_id for e in examples})
        return fit(members, examples, heads)

    monkeypatch.setattr(stacking, "fit", spy)
    config = teacher_config(combine="stack", views=0)
    teacher = HeadsTeacher(config)
    report = teacher.run()
    split = teacher.split
    assert set(teacher._stackers) == {"all", *range(FOLDS)}
    for context, fitted_on in zip(teacher._stackers, seen):
        folds = {split[song] for song in fitted_on}
        assert "holdout" not in folds and fitted_on
        if context != "all":
            assert f"fold{context}" not in folds
    labels = read_teacher_labels(f"{config.out}/labels-fold0.jsonl")
    assert labels.provenance["combine"] == "stack" and labels.provenance["temperatures"] == {}
    assert set(report["stacker_weights"]) >= {"verdict", "themes", "score"}
    assert "Stacked (a, b)" in Path(config.out, "report.md").read_text()
