"""Analyzer results to predictions, predictions to the evaluation summary, and comparisons.

A prediction is read off an `AnalysisResult` the way the web app would read it: the score is
`scoring_results.final_score`; the verdict is `model_analysis.framework.verdict` (plan names
folded onto tiers) or, when the backend gives none (the no-lyrics rule, legacy-style backends),
the score's band. A failed analysis (`error_message` set) counts as the verdict "error" with its
score 0: it stays in every metric, so failures lower the numbers instead of vanishing.
"""

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from selah import schema
from selah.runtime import peak_rss_mib
from selah.scripture import parse_references
from training.data.readers import Example
from training.evaluate import metrics

ERROR_VERDICT = "error"


def _primary(block: Any) -> str | None:
    if isinstance(block, dict) and isinstance(block.get("primary"), dict):
        return block["primary"].get("label")
    return None


def prediction_from_result(result: Any) -> dict:
    """The fields we score, read off one `AnalysisResult` (JSON-ready)."""
    score = float(result.get_final_score())
    framework = (result.model_analysis or {}).get("framework") or {}
    if result.error_message is not None:
        verdict, source = ERROR_VERDICT, "error"
    elif framework.get("verdict"):
        try:
            verdict, source = schema.canonical_verdict(framework["verdict"]), "framework"
        except ValueError:
            verdict, source = str(framework["verdict"]), "framework_unrecognised"
    else:
        verdict, source = schema.verdict_for_score(score), "score_band"
    confidence = framework.get("confidence")
    probabilities = framework.get("verdict_probabilities") or {}
    if confidence is None and verdict in probabilities:
        confidence = probabilities[verdict]
    themes = []
    for item in (result.biblical_analysis or {}).get("themes", []):
        name = str(item.get("theme", "")) if isinstance(item, dict) else str(item)
        folded = schema.fold_theme(name)
        themes.append(folded.name if folded else name)
    scripture = [str(item.get("reference", "")) if isinstance(item, dict) else str(item)
                 for item in (result.biblical_analysis or {}).get("supporting_scripture", [])]
    model = result.model_analysis or {}
    safety = model.get("content_safety") if isinstance(model.get("content_safety"), dict) else {}
    return {
        "verdict": verdict, "verdict_source": source, "score": score,
        "confidence": float(confidence) if isinstance(confidence, (int, float)) else None,
        "themes": sorted(set(themes)), "scripture": scripture,
        "sentiment": _primary(model.get("sentiment")), "emotion": _primary(model.get("emotions")),
        "is_toxic": safety.get("is_toxic"), "quality_level": result.get_quality_level(),
        "error": result.error_message,
    }


def _verdict_block(gold: list[str], pred: list[str]) -> dict:
    labels = metrics.class_union(gold, pred, schema.VERDICTS)
    return {
        "accuracy": metrics.accuracy(gold, pred),
        "macro_f1": metrics.macro_f1(gold, pred),
        "labels": labels,
        "per_class": metrics.per_class(gold, pred, labels),
        "confusion_matrix": metrics.confusion_matrix(gold, pred, labels),
    }


def _repeat_block(runs: list[list[dict]]) -> dict:
    changed, deltas = 0, []
    for index in range(len(runs[0])):
        seen = [(run[index]["verdict"], run[index]["score"]) for run in runs]
        changed += len(set(seen)) > 1
        scores = [score for _, score in seen]
        deltas.append(max(scores) - min(scores))
    n = len(runs[0])
    return {"k": len(runs), "changed_share": changed / n, "changed": changed,
            "max_score_delta": max(deltas), "mean_score_delta": sum(deltas) / n}


def summarize(records: Sequence[Example], runs: list[list[dict]], latencies: list[float],
              wall_seconds: float, meta: dict | None = None) -> dict:
    """The evaluation summary of `runs` (one prediction list per repeat) against the gold labels."""
    preds = runs[0]
    gold_verdicts = [e.label.verdict for e in records]
    pred_verdicts = [p["verdict"] for p in preds]
    gold_scores = [float(e.label.score) for e in records]
    pred_scores = [p["score"] for p in preds]
    references = [ref for p in preds for ref in p["scripture"]]
    valid = sum(bool(parse_references(ref)) for ref in references)
    calibrated = [(p["confidence"], p["verdict"] == g) for p, g in zip(preds, gold_verdicts)
                  if p["confidence"] is not None and p["error"] is None]
    analysed = len(records) * len(runs)
    summary = {
        **(meta or {}),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n": len(records),
        "n_errors": sum(p["error"] is not None for p in preds),
        "verdict_sources": {s: sum(p["verdict_source"] == s for p in preds)
                            for s in sorted({p["verdict_source"] for p in preds})},
        "verdict": _verdict_block(gold_verdicts, pred_verdicts),
        "score": {"mae": metrics.mae(gold_scores, pred_scores),
                  "pearson": metrics.pearson(gold_scores, pred_scores)},
        "themes": metrics.set_micro_f1([e.label.themes for e in records],
                                       [p["themes"] for p in preds]),
        "scripture": {"n_references": len(references),
                      "valid_share": valid / len(references) if references else None},
        "calibration": {
            "n_with_confidence": len(calibrated),
            "ece": (metrics.expected_calibration_error(*zip(*calibrated)) if calibrated
                    else None),
            "bins": metrics.calibration_bins(*zip(*calibrated)) if calibrated else [],
        },
        "latency_s": {"p50": metrics.percentile(latencies, 50),
                      "p95": metrics.percentile(latencies, 95),
                      "mean": sum(latencies) / len(latencies)},
        "songs_per_minute": analysed / wall_seconds * 60.0 if wall_seconds > 0 else None,
        "wall_seconds": wall_seconds,
        "peak_rss_mib": peak_rss_mib(),
    }
    summary["themes"]["micro_f1"] = summary["themes"].pop("f1")
    if len(runs) > 1:
        summary["repeat"] = _repeat_block(runs)
    return summary


def read_predictions(path: str | Path) -> dict[str, dict]:
    """`{song_id: predicted fields}` from a predictions.jsonl written by `evaluate`."""
    found = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                found[row["song_id"]] = row["pred"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a predictions line ({exc})") from None
    return found


def compare_predictions(path_a: str | Path, path_b: str | Path, tolerance: float = 5.0) -> dict:
    """The plan's teacher-student agreement (same verdict, scores within 5) and Cohen's kappa."""
    a, b = read_predictions(path_a), read_predictions(path_b)
    common = [sid for sid in a if sid in b]
    if not common:
        raise ValueError(f"{path_a} and {path_b} share no songs")
    va, vb = [a[s]["verdict"] for s in common], [b[s]["verdict"] for s in common]
    sa, sb = [float(a[s]["score"]) for s in common], [float(b[s]["score"]) for s in common]
    return {
        "a": str(path_a), "b": str(path_b), "n_a": len(a), "n_b": len(b), "n_matched": len(common),
        "agreement": metrics.agreement(va, vb, sa, sb, tolerance),
        "agreement_tolerance": tolerance,
        "verdict_agreement": metrics.accuracy(va, vb),
        "cohen_kappa": metrics.cohen_kappa(va, vb),
        "score_mae": metrics.mae(sa, sb),
    }
