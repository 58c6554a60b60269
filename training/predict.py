"""Student logits to per-song predictions, and the validation metrics of distillation.

The one decoding convention, shared by evaluation during training and by the export:

- verdict: argmax of the verdict head's softmax (`verdict_probs`, `confidence` = its top prob);
- score: the regression head's sigmoid x 100 is `raw_score`; `score` is `raw_score` clamped into
  the predicted verdict's band of `schema.SCORE_BANDS` (integer bands: 85-100, 60-84, 40-59,
  0-39), so score and verdict never disagree. Score MAE is measured on the clamped `score`;
- every other head's probabilities under `heads`: categorical -> softmax `{label: p}`,
  multilabel (themes, concerns) -> per-name sigmoid `{name: p}`, `concern_severity` -> the
  [groups, severities] view of its logits (group g = `schema.CONCERN_CATEGORIES[g]`), softmax
  per concern `{concern: {severity: p}}`.
"""

from typing import Sequence

import torch

from training import metrics, schema
from training.data import Example

GROUP_NAMES = {"concern_severity": schema.CONCERN_CATEGORIES}
MULTILABEL_THRESHOLD = 0.5


def score_band(verdict: str) -> tuple[int, int]:
    """(lowest, highest) integer score of a verdict's band: context_required -> (60, 84)."""
    ceiling = 100
    for lowest, name in schema.SCORE_BANDS:
        if name == verdict:
            return lowest, ceiling
        ceiling = lowest - 1
    raise ValueError(f"unknown verdict {verdict!r}")


def _probs(values: torch.Tensor, labels: Sequence[str]) -> dict:
    return {label: float(p) for label, p in zip(labels, values)}


def decode_logits(logits: dict[str, torch.Tensor], head_specs) -> list[dict]:
    """Per-song predictions (JSON-ready) from a batch of head logits `{head: [n, width]}`."""
    decoded: dict[str, list] = {}
    for spec in head_specs:
        values = logits[spec.name].detach().float().cpu()
        if spec.kind == "categorical":
            decoded[spec.name] = [_probs(row, spec.labels) for row in values.softmax(-1)]
        elif spec.kind == "multilabel":
            decoded[spec.name] = [_probs(row, spec.labels) for row in values.sigmoid()]
        elif spec.kind == "grouped":
            grouped = values.view(len(values), spec.groups, len(spec.labels)).softmax(-1)
            names = GROUP_NAMES.get(spec.name) or [str(g) for g in range(spec.groups)]
            decoded[spec.name] = [{name: _probs(group, spec.labels)
                                   for name, group in zip(names, row)} for row in grouped]
        else:
            decoded[spec.name] = [{"score": float(v) * 100.0} for v in values[:, 0].sigmoid()]
    predictions = []
    for i in range(len(decoded["verdict"])):
        heads = {name: rows[i] for name, rows in decoded.items()}
        verdict_probs = heads["verdict"]
        verdict = max(schema.VERDICTS, key=lambda v: verdict_probs[v])
        raw = heads["score"]["score"]
        lowest, highest = score_band(verdict)
        predictions.append({
            "verdict": verdict,
            "verdict_probs": verdict_probs,
            "confidence": verdict_probs[verdict],
            "score": min(max(raw, float(lowest)), float(highest)),
            "raw_score": raw,
            "heads": heads,
        })
    return predictions


@torch.inference_mode()
def predict_songs(model, featurizer, songs: Sequence[dict], batch_size: int = 8) -> list[dict]:
    """Predictions for `{title, artist, lyrics}` songs: verdict, verdict_probs, confidence,
    score (clamped into the verdict's band), raw_score and every head's probabilities."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    predictions: list[dict] = []
    try:
        for start in range(0, len(songs), batch_size):
            batch = featurizer(songs[start:start + batch_size])
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            predictions.extend(decode_logits(model(**batch), model.head_specs))
    finally:
        model.train(was_training)
    return predictions


def evaluate_predictions(examples: Sequence[Example], predictions: Sequence[dict]) -> dict:
    """Verdict accuracy, macro-F1 (class union), per-class recall, score MAE (clamped and raw),
    score Pearson and theme micro-F1 of predictions against the examples' gold labels."""
    gold = [e.label.verdict for e in examples]
    pred = [p["verdict"] for p in predictions]
    gold_scores = [float(e.label.score) for e in examples]
    per_class = metrics.per_class(gold, pred, metrics.class_union(gold, pred, schema.VERDICTS))
    themes = metrics.set_micro_f1(
        [e.label.themes for e in examples],
        [[n for n, p in pr["heads"]["themes"].items() if p >= MULTILABEL_THRESHOLD]
         for pr in predictions])
    return {
        "n": len(examples),
        "verdict_accuracy": metrics.accuracy(gold, pred),
        "verdict_macro_f1": metrics.macro_f1(gold, pred),
        "score_mae": metrics.mae(gold_scores, [p["score"] for p in predictions]),
        "raw_score_mae": metrics.mae(gold_scores, [p["raw_score"] for p in predictions]),
        "score_pearson": metrics.pearson(gold_scores, [p["score"] for p in predictions]),
        "recall": {label: row["recall"] for label, row in per_class.items()},
        "themes_micro_f1": themes["f1"],
    }
