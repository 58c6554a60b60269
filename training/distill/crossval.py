"""`python -m training.distill.crossval`: a distillation recipe scored by K-fold cross-validation.

    python -m training.distill.crossval --config training/configs/student_embedded.yaml --folds 5 \\
        [--folds-to-run 0,1] --out runs/cv-embedded [--no-baseline] [any distill flag ...]

Folds come from `training.data.readers.kfold` over the non-holdout songs (the holdout is never
touched). Each fold runs `training.distill.loop` with `split: fold:K/N` into DIR/foldK; every flag
not listed above goes to the recipe (`--trainable-layers 0`, `--epochs 3`, ...). All folds share the
signal cache and the frozen-feature cache (DIR/features unless --feature-cache is given), so a
frozen backbone is run once per song, not once per fold. DIR/crossval.json and DIR/crossval.md
report per fold and as mean / std over folds: verdict accuracy, macro-F1 and score MAE of the epoch
the recipe selects ("best": chosen on the validation fold itself, so slightly optimistic) and of the
last epoch (a fixed epoch count: the unbiased number), and, unless --no-baseline, the same
numbers for a frozen-backbone mean embedding + logistic regression (score: ridge regression,
clamped into the predicted verdict's band).
"""

import argparse
import dataclasses
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from selah.deps import require
from selah.schema import VERDICTS
from training.config import ConfigError, check_config, option, parse_config, save_config
from training.data.readers import kfold, read_examples
from training.distill import decoding
from training.distill.config import DistillConfig
from training.distill.features import FeatureStore
from training.distill.loop import Distiller
from training.evaluate import metrics

PROG = "python -m training.distill.crossval"
METRICS = ("verdict_accuracy", "verdict_macro_f1", "score_mae")
TARGETS = {"verdict_accuracy": 0.78, "verdict_macro_f1": 0.72, "score_mae": 7.0}


@dataclass
class CrossvalConfig:
    """Settings of a cross-validation run (the recipe's settings are a DistillConfig)."""

    folds: int = option(5, "number of folds N", minimum=2, maximum=50)
    folds_to_run: str | None = option(None, "comma-separated fold indices to run (default: all)")
    out: str | None = option(None, "output folder: foldK/, crossval.json, crossval.md")
    baseline: bool = option(True, "also score frozen mean embedding + logistic regression")

    def fold_indices(self) -> list[int]:
        """The folds to run, checked against `folds`."""
        if not self.folds_to_run:
            return list(range(self.folds))
        try:
            indices = [int(part) for part in self.folds_to_run.split(",") if part.strip()]
        except ValueError:
            indices = [-1]
        if not indices or any(not 0 <= i < self.folds for i in indices):
            raise ConfigError(f"folds_to_run must list fold indices 0..{self.folds - 1}, "
                              f"got {self.folds_to_run!r}")
        return sorted(set(indices))

    def validate(self) -> None:
        """Settings that need each other."""
        if not self.out:
            raise ConfigError("out is required (--out DIR)")
        self.fold_indices()


def parse_args(argv: list[str] | None) -> tuple[CrossvalConfig, DistillConfig]:
    """The cross-validation settings and the recipe (every other flag, `--config` included)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False, epilog="Other flags, --config included, "
                                     "set the recipe: see python -m training.distill --help.")
    parser.add_argument("--folds", type=int, default=5, help="number of folds N (default: 5)")
    parser.add_argument("--folds-to-run", help="comma-separated fold indices (default: all)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="also score the frozen-embedding logistic-regression baseline")
    args, rest = parser.parse_known_args(argv)
    config = CrossvalConfig(args.folds, args.folds_to_run, args.out, args.baseline)
    try:
        check_config(config)
    except ConfigError as exc:
        parser.error(str(exc))
    recipe = parse_config(DistillConfig, rest + ["--out", str(Path(args.out) / "fold0")],
                          f"{PROG} (recipe)")
    return config, recipe


def _spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def aggregate(rows: list[dict]) -> dict:
    """`{metric: {mean, std}}` over folds."""
    return {m: _spread([row[m] for row in rows]) for m in METRICS}


def logistic_baseline(recipe: DistillConfig, examples: list, folds: list[tuple[list, list]],
                      store: FeatureStore) -> list[dict]:
    """Per fold: the frozen backbone's pooled song vector, standardised, into a logistic
    regression (verdict) and a ridge regression (score, clamped into the verdict's band)."""
    import numpy as np
    from accelerate import Accelerator
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from selah.schema import score_band
    from selah.student import Featurizer, build_student
    from training.distill.backbones import resolve_backbone
    from training.distill.features import apply_freeze, frozen_features, song_key

    model, tokenizer = build_student(resolve_backbone(recipe.backbone), recipe.pooling)
    plan = apply_freeze(model, 0)
    featurizer = Featurizer(tokenizer, recipe.max_length, recipe.stride)
    encoded = [{k: v for k, v in featurizer([e.song()]).items()
                if k in ("input_ids", "attention_mask")} for e in examples]
    vectors = frozen_features(model, plan, featurizer, encoded, [song_key(e) for e in examples],
                              store, Accelerator(cpu=recipe.device == "cpu"),
                              recipe.eval_batch_size, recipe.progress)
    by_id = {e.song_id: v.float().numpy() for e, v in zip(examples, vectors)}
    results = []
    for train, val in folds:
        x_train = np.stack([by_id[e.song_id] for e in train])
        x_val = np.stack([by_id[e.song_id] for e in val])
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
        classifier.fit(x_train, [e.label.verdict for e in train])
        regressor = make_pipeline(StandardScaler(), Ridge(alpha=100.0))
        regressor.fit(x_train, [e.label.score for e in train])
        verdicts = list(classifier.predict(x_val))
        scores = [min(max(float(s), score_band(v)[0]), score_band(v)[1])
                  for s, v in zip(regressor.predict(x_val), verdicts)]
        gold = [e.label.verdict for e in val]
        results.append({"verdict_accuracy": metrics.accuracy(gold, verdicts),
                        "verdict_macro_f1": metrics.macro_f1(gold, verdicts),
                        "score_mae": metrics.mae([e.label.score for e in val], scores)})
    return results


def fold_figures(distiller: Distiller, teacher: str | None) -> dict:
    """The last epoch's student on its validation songs: every figure of `metrics`, and, with a
    teacher file that labels those songs, the teacher's own figures and the two agreements."""
    from selah.inference import decode_logits
    from selah.student import HEAD_SPECS
    from training.distill.targets import read_teacher_labels
    from training.teacher import ensemble

    val = distiller.val_examples
    logits = distiller.logits(val)
    torch.save({"song_ids": [e.song_id for e in val], "logits": logits},
               distiller.out / "val_logits.pt")
    student = decode_logits(logits, HEAD_SPECS)
    figures = {"student": {**metrics.evaluate_predictions(val, student),
                           **metrics.evaluate_fields(val, student)}}
    if not teacher:
        return figures
    records = read_teacher_labels(teacher).records
    covered = [i for i, e in enumerate(val) if e.song_id in records]
    if not covered:
        return figures
    probs = {name: torch.tensor([[records[val[i].song_id][name][label]
                                  for label in ensemble.SPECS[name].labels] for i in covered])
             for name in ensemble.LABELLED}
    probs["score"] = torch.tensor([[records[val[i].song_id].get("score", 50.0)]
                                   for i in covered])
    songs, mine = [val[i] for i in covered], [student[i] for i in covered]
    own = ensemble.probabilities({name: value[covered] for name, value in logits.items()})
    probs.update({name: own[name] for name in own if name not in probs})  # not in the file
    taught = decode_logits(ensemble.as_logits(probs), HEAD_SPECS)
    figures["teacher"] = {**metrics.evaluate_predictions(songs, taught),
                          **metrics.evaluate_fields(songs, taught)}
    figures["agreement"] = {
        "n": len(covered),
        "verdict": metrics.accuracy([p["verdict"] for p in taught], [p["verdict"] for p in mine]),
        "plan": metrics.agreement([p["verdict"] for p in taught], [p["verdict"] for p in mine],
                                  [p["score"] for p in taught], [p["score"] for p in mine]),
        "kappa": metrics.cohen_kappa([p["verdict"] for p in taught],
                                     [p["verdict"] for p in mine])}
    return figures


def _row(name: str, values: dict, extra: str = "") -> str:
    cells = " | ".join(f"{values[m]:.3f}" if m != "score_mae" else f"{values[m]:.2f}"
                       for m in METRICS)
    return f"| {name} | {cells} | {extra} |"


def _mean_row(name: str, summary: dict, extra: str = "") -> str:
    digits = {m: 2 if m == "score_mae" else 3 for m in METRICS}
    cells = " | ".join(f"{summary[m]['mean']:.{digits[m]}f} ± {summary[m]['std']:.{digits[m]}f}"
                       for m in METRICS)
    return f"| **{name}** | {cells} | {extra} |"


FIGURES = ("verdict_accuracy", "verdict_macro_f1", "score_mae", "score_pearson",
           "themes_micro_f1", "concerns_micro_f1", "ece")


def mean_figures(rows: list[dict]) -> dict:
    """The mean over folds of every figure of `fold_figures` (recall per class included)."""
    mean = metrics.mean_present
    student = {f: mean([r["student"][f] for r in rows]) for f in FIGURES}
    student["recall"] = {v: mean([r["student"]["recall"].get(v) for r in rows])
                         for v in VERDICTS}
    result = {"student": student}
    if all("agreement" in r for r in rows) and rows:
        result["teacher"] = {f: mean([r["teacher"][f] for r in rows]) for f in FIGURES}
        result["teacher"]["recall"] = {v: mean([r["teacher"]["recall"].get(v) for r in rows])
                                       for v in VERDICTS}
        result["agreement"] = {k: mean([r["agreement"][k] for r in rows])
                               for k in ("verdict", "plan", "kappa")}
    return result


def figures_row(name: str, figures: dict) -> str:
    """One row of the every-figure table."""
    student = figures["student"]

    def cell(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    recall = " / ".join(cell(student["recall"].get(v), 2) for v in VERDICTS)
    cells = [cell(student[f], 2 if f == "score_mae" else 3) for f in FIGURES] + [recall]
    if "agreement" in figures:
        agree = figures["agreement"]
        cells += [cell(figures["teacher"]["verdict_accuracy"]),
                  f"{cell(agree['verdict'])} / {cell(agree['plan'])} / {cell(agree['kappa'])}"]
    else:
        cells += ["-", "-"]
    return f"| {name} | " + " | ".join(cells) + " |"


def markdown(report: dict) -> str:
    """The cross-validation report as a Markdown table."""
    lines = [f"# Cross-validation: {report['recipe_summary']}", "",
             f"{report['folds']}-fold CV over the non-holdout songs ({report['n_songs']} songs "
             f"in the file), folds run: {report['folds_run']}. Targets: verdict accuracy >= "
             f"{TARGETS['verdict_accuracy']}, macro-F1 >= {TARGETS['verdict_macro_f1']}, score "
             f"MAE <= {TARGETS['score_mae']}.", "",
             "| run | verdict accuracy | verdict macro-F1 | score MAE | notes |",
             "| --- | --- | --- | --- | --- |"]
    for fold in report["per_fold"]:
        lines.append(_row(f"fold {fold['fold']} last (epoch {fold['epochs']})", fold["last"],
                          f"{fold['train_seconds_per_epoch']:.0f} s/epoch train, "
                          f"{fold['wall_seconds']:.0f} s wall"))
        lines.append(_row(f"fold {fold['fold']} best (epoch {fold['best_epoch']})",
                          fold["best"], "selected on the validation fold"))
    lines.append(_mean_row("mean ± std, last epoch", report["mean_last"], "unbiased"))
    lines.append(_mean_row("mean ± std, best epoch", report["mean_best"], "optimistic"))
    if report.get("baseline"):
        for k, fold in zip(report["folds_run"], report["baseline"]["per_fold"]):
            lines.append(_row(f"baseline fold {k}", fold, "frozen mean embedding + LR"))
        lines.append(_mean_row("baseline mean ± std", report["baseline"]["mean"]))
    lines += ["", "Last epoch, every figure (teacher and agreement: where the recipe's teacher "
              "file labels the validation songs):", "",
              "| fold | accuracy | macro-F1 | MAE | Pearson | theme F1 | concern F1 | ECE | "
              "recall free / context / caution / avoid | teacher accuracy | agreement verdict "
              "/ plan / kappa |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
              "| --- |"]
    for fold in report["per_fold"]:
        lines.append(figures_row(f"fold {fold['fold']}", fold["figures"]))
    lines.append(figures_row("**mean**", report["mean_figures"]))
    if report.get("decoding"):
        lines += decoding.markdown(report["decoding"])
    lines.append("")
    lines.append(f"Wall time: {report['wall_seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def run_crossval(config: CrossvalConfig, recipe: DistillConfig,
                 argv: list[str] | None = None) -> dict:
    """Run the recipe on each fold, then the baseline; write crossval.json and crossval.md."""
    if config.baseline:  # fail before hours of training, not after
        require("sklearn", "the logistic-regression baseline (--no-baseline skips it)")
    started = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(recipe.feature_cache or out / "features")
    signals = recipe.signals_cache or str(out / "signals.jsonl")
    save_config(recipe, out / "recipe.yaml", argv, PROG)
    per_fold = []
    for k in config.fold_indices():
        teacher = (recipe.teacher_labels or "").replace("{fold}", str(k)) or None
        fold_config = dataclasses.replace(recipe, split=f"fold:{k}/{config.folds}",
                                          out=str(out / f"fold{k}"), signals_cache=signals,
                                          teacher_labels=teacher)
        fold_started = time.perf_counter()
        distiller = Distiller(fold_config, store, argv)
        summary = distiller.run()
        per_fold.append({
            "teacher_labels": teacher, "figures": fold_figures(distiller, teacher),
            "fold": k, "epochs": summary["epochs_done"], "best_epoch": summary["best"]["epoch"],
            "best": {m: summary["best"]["metrics"][m] for m in METRICS},
            "last": {m: summary["last"]["metrics"][m] for m in METRICS},
            "best_metrics": summary["best"]["metrics"], "last_metrics": summary["last"]["metrics"],
            "train_seconds_per_epoch": summary["train_seconds_per_epoch"],
            "wall_seconds": time.perf_counter() - fold_started})
    recipe_summary = (f"{recipe.backbone}, trainable_layers {recipe.trainable_layers}, "
                      f"{recipe.epochs} epochs")
    examples, _ = read_examples(recipe.data)
    report = {"recipe": dataclasses.asdict(recipe), "recipe_summary": recipe_summary,
              "folds": config.folds, "folds_run": config.fold_indices(),
              "n_songs": len(examples), "per_fold": per_fold,
              "mean_last": aggregate([f["last"] for f in per_fold]),
              "mean_best": aggregate([f["best"] for f in per_fold]), "targets": TARGETS,
              "mean_figures": mean_figures([f["figures"] for f in per_fold])}
    if len(per_fold) > 1:  # the decoding fitted on the other folds, scored on each
        by_id = {e.song_id: e for e in examples}
        saved = [torch.load(out / f"fold{f['fold']}" / "val_logits.pt", weights_only=True)
                 for f in per_fold]
        report["decoding"] = decoding.study([(s["logits"], [by_id[i] for i in s["song_ids"]])
                                             for s in saved])
        for name, fitted in decoding.files(report["decoding"]).items():
            (out / name).write_text(json.dumps(fitted, indent=2))
    if config.baseline:
        folds = kfold(examples, config.folds, recipe.holdout, recipe.split_seed)
        baseline = logistic_baseline(recipe, examples, [folds[k] for k in report["folds_run"]],
                                     store)
        report["baseline"] = {"per_fold": baseline, "mean": aggregate(baseline)}
    report["wall_seconds"] = time.perf_counter() - started
    (out / "crossval.json").write_text(json.dumps(report, indent=2))
    (out / "crossval.md").write_text(markdown(report))
    return report


def main(argv: list[str] | None = None) -> int:
    """`python -m training.distill.crossval --config FILE --folds N [--folds-to-run K] --out D`."""
    argv = sys.argv[1:] if argv is None else argv
    config, recipe = parse_args(argv)
    report = run_crossval(config, recipe, argv)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
