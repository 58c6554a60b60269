"""What a classification-head teacher is worth: out-of-fold and hold-out metrics, as JSON and
Markdown (`training.teacher.heads` writes both)."""

import statistics

import torch

from selah.inference import decode_logits
from selah.schema import VERDICTS
from selah.student import HEAD_SPECS
from training.evaluate import metrics
from training.teacher import ensemble, stacking

FIGURES = ("verdict_accuracy", "verdict_macro_f1", "score_mae", "score_pearson",
           "themes_micro_f1", "concerns_micro_f1", "ece")


def gold_rows(name: str, table: dict, by_id: dict) -> tuple[torch.Tensor, str, torch.Tensor]:
    """(probabilities [N, width], head kind, gold [N] or [N, K]) of the songs in `table` whose
    label has the head's field: what `ensemble.fit_temperature` takes."""
    spec = ensemble.SPECS[name]
    songs = list(table)
    rows, gold = ensemble.gold_targets(name, [by_id[song] for song in songs])
    if not rows:
        return torch.zeros(0, spec.width), spec.kind, torch.zeros(0, dtype=torch.long)
    return torch.stack([table[songs[i]][name] for i in rows]), spec.kind, gold


def score(table: dict, by_id: dict, temperatures: dict) -> dict:
    """Metrics of calibrated teacher probabilities `{song_id: {head: probs}}` against gold."""
    ids = sorted(table)
    stacked = ensemble.calibrate(ensemble.stack(table, ids), temperatures)
    predictions = decode_logits(ensemble.as_logits(stacked), HEAD_SPECS)
    examples = [by_id[s] for s in ids]
    result = metrics.evaluate_predictions(examples, predictions)
    result.update(metrics.evaluate_fields(examples, predictions))
    return result


def teacher_report(teacher, temperatures: dict) -> dict:
    """Per fold: the out-of-fold songs scored with temperatures fitted on the other folds (so the
    calibration is out-of-fold too), uncalibrated alongside; the hold-out: the mean of the fits,
    calibrated on every fold. Each member's own out-of-fold verdict accuracy."""
    n = teacher.config.folds
    per_fold = []
    for k in range(n):
        table = teacher.oof([k], k)  # a stacked teacher: the stacker that never saw fold k
        per_fold.append({"fold": k, "n": len(table),
                         "calibrated": score(table, teacher.by_id,
                                             temperatures[f"labels-fold{k}.jsonl"]),
                         "uncalibrated": score(table, teacher.by_id, {})})
    members = {}
    for name, outputs in teacher.outputs.items():
        members[name] = [outputs[(k,)]["val_metrics"]["verdict_accuracy"] for k in range(n)]
    return {"members": list(teacher.outputs), "folds": n, "per_fold": per_fold,
            "mean": {figure: metrics.mean_present([f["calibrated"][figure] for f in per_fold])
                     for figure in FIGURES},
            "mean_uncalibrated": {figure: metrics.mean_present([f["uncalibrated"][figure]
                                                                for f in per_fold])
                                  for figure in FIGURES},
            "holdout": score(teacher.holdout(), teacher.by_id, temperatures["labels.jsonl"]),
            "temperatures": temperatures["labels.jsonl"],
            "member_fold_accuracy": members, "combine": teacher.config.combine,
            "stacker_weights": (stacking.describe(teacher.stacker("all"))
                                if teacher.config.combine == "stack" else None)}


def _cell(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cells(values: dict) -> str:
    recall = values["recall"]
    return " | ".join([_cell(values[f], 2 if f == "score_mae" else 3) for f in FIGURES]
                      + [" / ".join(_cell(recall.get(v), 2) for v in VERDICTS)])


def markdown(result: dict) -> str:
    """The report as a Markdown table."""
    lines = [f"# Teacher: {' + '.join(result['members'])} (classification heads, cross-fitted)",
             "", "| songs | accuracy | macro-F1 | score MAE | Pearson | theme F1 | concern F1 | "
             "ECE | recall free / context / caution / avoid |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for fold in result["per_fold"]:
        lines.append(f"| fold {fold['fold']} ({fold['n']}) | {_cells(fold['calibrated'])} |")
    mean = result["mean"]
    lines.append("| **mean of folds** | " + " | ".join(
        _cell(mean[f], 2 if f == "score_mae" else 3) for f in FIGURES) + " | |")
    lines.append(f"| hold-out ({result['holdout']['n']}) | {_cells(result['holdout'])} |")
    if result.get("stacker_weights"):
        lines += ["", "Stacked (" + ", ".join(result["members"]) + "); each member's weight per "
                  "head: " + "; ".join(f"{head} {' / '.join(f'{w:.2f}' for w in weights)}"
                                       for head, weights in result["stacker_weights"].items())
                  + "."]
    lines += ["", "Uncalibrated mean ECE: "
              f"{_cell(result['mean_uncalibrated']['ece'])}; temperatures (all folds): "
              + ", ".join(f"{k} {v:.2f}" for k, v in result["temperatures"].items()) + ".", ""]
    for name, values in result["member_fold_accuracy"].items():
        lines.append(f"- member {name}: out-of-fold verdict accuracy per fold "
                     + ", ".join(f"{v:.3f}" for v in values)
                     + f" (mean {statistics.fmean(values):.3f}, uncalibrated); its fits "
                     f"{result['member_seconds'].get(name, 0):.0f} s (0: made before fits "
                     "recorded their time)")
    if result.get("wall_seconds") is not None:
        lines.append(f"- wall {result['wall_seconds']:.0f} s, peak RSS "
                     f"{result.get('peak_rss_mib') or 0:.0f} MiB")
    return "\n".join(lines) + "\n"
