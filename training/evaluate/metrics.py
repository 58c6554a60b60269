"""Evaluation metrics, pure Python, computed as the web app's owner computed them (labels.md).

Verdict accuracy is exact match; verdict macro-F1 is the unweighted mean of per-class F1 over the
union of gold and predicted classes (a class only ever predicted counts, with F1 0); score MAE
and Pearson compare the 0-100 scores. A ratio with a zero denominator is 0.0 (precision of a
class never predicted), except Pearson, which is None when either side has no variance.
"""

import math
from collections import Counter
from typing import Hashable, Iterable, Sequence

from selah import schema


def accuracy(gold: Sequence, pred: Sequence) -> float:
    """Share of exact matches."""
    _check(gold, pred)
    return sum(g == p for g, p in zip(gold, pred)) / len(gold)


def class_union(gold: Iterable, pred: Iterable, order: Sequence = ()) -> list:
    """The classes seen in gold or predictions: those in `order` first, then the rest sorted."""
    seen = set(gold) | set(pred)
    return [c for c in order if c in seen] + sorted(seen - set(order), key=str)


def per_class(gold: Sequence, pred: Sequence, labels: Sequence | None = None) -> dict:
    """`{class: {precision, recall, f1, support}}` over `labels` (default: the class union)."""
    _check(gold, pred)
    labels = list(labels) if labels is not None else class_union(gold, pred)
    out = {}
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred))
        predicted = sum(p == label for p in pred)
        support = sum(g == label for g in gold)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return out


def macro_f1(gold: Sequence, pred: Sequence) -> float:
    """Unweighted mean F1 over the union of gold and predicted classes."""
    scores = per_class(gold, pred, class_union(gold, pred))
    return sum(s["f1"] for s in scores.values()) / len(scores)


def confusion_matrix(gold: Sequence, pred: Sequence, labels: Sequence) -> list[list[int]]:
    """Counts, rows gold and columns predicted, in `labels` order."""
    _check(gold, pred)
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred):
        matrix[index[g]][index[p]] += 1
    return matrix


def mae(gold: Sequence[float], pred: Sequence[float]) -> float:
    """Mean absolute error."""
    _check(gold, pred)
    return sum(abs(g - p) for g, p in zip(gold, pred)) / len(gold)


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None when either side is constant (undefined)."""
    _check(x, y)
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def set_micro_f1(gold_sets: Sequence[Iterable[Hashable]], pred_sets: Sequence[Iterable[Hashable]]
                 ) -> dict:
    """Micro precision, recall and F1 of predicted sets (themes) against gold sets, pooled."""
    _check(gold_sets, pred_sets)
    tp = fp = fn = 0
    for gold, pred in zip(gold_sets, pred_sets):
        gold, pred = set(gold), set(pred)
        tp += len(gold & pred)
        fp += len(pred - gold)
        fn += len(gold - pred)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolating linearly between order statistics (as numpy)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's kappa of two raters, (p_o - p_e) / (1 - p_e); 1.0 when both only say one class."""
    _check(a, b)
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[c] * count_b[c] for c in set(a) | set(b)) / (n * n)
    if expected == 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)


def agreement(verdicts_a: Sequence, verdicts_b: Sequence, scores_a: Sequence[float],
              scores_b: Sequence[float], tolerance: float = 5.0) -> float:
    """The plan's teacher-student agreement: same verdict and scores within `tolerance` points."""
    _check(verdicts_a, verdicts_b)
    _check(scores_a, scores_b)
    hits = sum(va == vb and abs(sa - sb) <= tolerance
               for va, vb, sa, sb in zip(verdicts_a, verdicts_b, scores_a, scores_b))
    return hits / len(verdicts_a)


def calibration_bins(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
                     ) -> list[dict]:
    """Reliability-diagram bins over [0, 1]: `{low, high, count, confidence, accuracy}`."""
    _check(confidences, correct)
    out = []
    for index in range(bins):
        low, high = index / bins, (index + 1) / bins
        members = [(c, ok) for c, ok in zip(confidences, correct)
                   if low <= c < high or (index == bins - 1 and c == 1.0)]
        if members:
            out.append({"low": low, "high": high, "count": len(members),
                        "confidence": sum(c for c, _ in members) / len(members),
                        "accuracy": sum(ok for _, ok in members) / len(members)})
    return out


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool],
                               bins: int = 10) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over the calibration bins."""
    filled = calibration_bins(confidences, correct, bins)
    n = len(confidences)
    return sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in filled)


def _check(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {len(a)} gold vs {len(b)} predicted")
    if not a:
        raise ValueError("no items to score")


def evaluate_predictions(examples: Sequence, predictions: Sequence[dict]) -> dict:
    """Verdict accuracy, macro-F1 (class union), per-class recall, score MAE (clamped and raw),
    score Pearson and theme micro-F1 of `selah.inference` predictions against the gold labels of
    `training.data.readers.Example`s."""
    gold = [e.label.verdict for e in examples]
    pred = [p["verdict"] for p in predictions]
    gold_scores = [float(e.label.score) for e in examples]
    classes = per_class(gold, pred, class_union(gold, pred, schema.VERDICTS))
    themes = set_micro_f1(
        [e.label.themes for e in examples],
        [[n for n, p in pr["heads"]["themes"].items() if p >= schema.MULTILABEL_THRESHOLD]
         for pr in predictions])
    return {
        "n": len(examples),
        "verdict_accuracy": accuracy(gold, pred),
        "verdict_macro_f1": macro_f1(gold, pred),
        "score_mae": mae(gold_scores, [p["score"] for p in predictions]),
        "raw_score_mae": mae(gold_scores, [p["raw_score"] for p in predictions]),
        "score_pearson": pearson(gold_scores, [p["score"] for p in predictions]),
        "recall": {label: row["recall"] for label, row in classes.items()},
        "themes_micro_f1": themes["f1"],
    }


def evaluate_fields(examples: Sequence, predictions: Sequence[dict]) -> dict:
    """What `evaluate_predictions` leaves out: concern micro-F1 and the verdict confidences'
    expected calibration error."""
    concerns = set_micro_f1(
        [[category for category, _ in e.label.concerns] for e in examples],
        [[n for n, p in pr["heads"]["concerns"].items() if p >= schema.MULTILABEL_THRESHOLD]
         for pr in predictions])
    return {"concerns_micro_f1": concerns["f1"],
            "ece": expected_calibration_error(
                [p["confidence"] for p in predictions],
                [p["verdict"] == e.label.verdict for p, e in zip(predictions, examples)])}


def mean_present(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are not None (a Pearson of constant predictions is None);
    None when there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
