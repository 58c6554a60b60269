"""Cross-validation of the tiny recipe on the twelve written fixture songs."""

import json

import pytest

from tests.training.paths import SONGS, TINY_YAML
from training.config import ConfigError, check_config
from training.distill.crossval import CrossvalConfig, aggregate, main, parse_args


def test_crossval_runs_the_folds_and_reports_mean_and_std(tiny_bert, signals_cache, tmp_path,
                                                          capsys):
    out = tmp_path / "cv"
    argv = ["--config", str(TINY_YAML), "--backbone", str(tiny_bert), "--data", str(SONGS),
            "--folds", "3", "--folds-to-run", "0,2", "--out", str(out), "--epochs", "1",
            "--signals-cache", str(signals_cache), "--no-progress"]
    assert main(argv) == 0
    report = json.loads((out / "crossval.json").read_text())
    assert report["folds_run"] == [0, 2] and [f["fold"] for f in report["per_fold"]] == [0, 2]
    for fold in report["per_fold"]:
        assert (out / f"fold{fold['fold']}" / "best" / "student.json").is_file()
        assert set(fold["last"]) == {"verdict_accuracy", "verdict_macro_f1", "score_mae"}
    accuracies = [f["last"]["verdict_accuracy"] for f in report["per_fold"]]
    assert report["mean_last"]["verdict_accuracy"]["mean"] == pytest.approx(sum(accuracies) / 2)
    assert len(report["baseline"]["per_fold"]) == 2
    assert "split: fold:2/3" in (out / "fold2" / "config.yaml").read_text()
    table = (out / "crossval.md").read_text()
    assert "| fold 0 last (epoch 1) |" in table and "baseline mean" in table
    assert "mean ± std, last epoch" in capsys.readouterr().out
    assert any((out / "features").iterdir())  # frozen features shared by the folds


def test_recipe_flags_pass_through(tmp_path):
    config, recipe = parse_args(["--config", str(TINY_YAML), "--backbone", "some/backbone",
                                 "--data", str(SONGS),
                                 "--folds", "4", "--out", str(tmp_path), "--trainable-layers",
                                 "0", "--no-baseline"])
    assert config.folds == 4 and config.fold_indices() == [0, 1, 2, 3] and not config.baseline
    assert recipe.trainable_layers == 0 and recipe.backbone == "some/backbone"


@pytest.mark.parametrize("folds, chosen", [(5, "0,5"), (5, "a"), (3, ",")])
def test_bad_fold_lists_are_refused(folds, chosen):
    with pytest.raises(ConfigError, match="folds_to_run"):
        check_config(CrossvalConfig(folds=folds, folds_to_run=chosen, out="x"))


def test_aggregate_gives_mean_and_sample_std():
    rows = [{"verdict_accuracy": 0.5, "verdict_macro_f1": 0.4, "score_mae": 8.0},
            {"verdict_accuracy": 0.7, "verdict_macro_f1": 0.6, "score_mae": 6.0}]
    summary = aggregate(rows)
    assert summary["verdict_accuracy"]["mean"] == pytest.approx(0.6)
    assert summary["score_mae"]["std"] == pytest.approx(2 ** 0.5)
