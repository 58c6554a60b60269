"""`report.html` of an evaluation: headline metrics, per-class table, confusion matrix, calibration.

One self-contained file (plots embedded as PNG data URIs, matplotlib's Agg backend, no network).
It shows aggregates only: no titles or lyrics. The owner's fine-tuned GPT-4o-mini numbers are
printed beside ours as context, with the caveat that they were measured on other songs.
"""

import base64
import html
import io
from pathlib import Path
from typing import Sequence

from selah.deps import require

# labels.md: the owner's fine-tuned GPT-4o-mini on 138 held-out songs (not the songs scored here).
OWNER_BASELINE = {"accuracy": 0.804, "macro_f1": 0.791, "mae": 4.47, "pearson": 0.967, "n": 138}


def _pyplot():
    matplotlib = require("matplotlib", "the evaluation report's plots")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def confusion_png(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """Base64 PNG of the confusion matrix (rows gold, columns predicted; shade = row share)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 2, 1.1 * len(labels) + 1.5))
    shares = [[c / (sum(row) or 1) for c in row] for row in matrix]
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center",
                    color="white" if shares[i][j] > 0.5 else "black")
    ax.set_title("Verdict confusion matrix")
    try:
        return _png(fig)
    finally:
        plt.close(fig)


def calibration_png(bins: Sequence[dict], points: Sequence[tuple[float, float]]) -> str:
    """Base64 PNG: reliability diagram of verdict confidence, and predicted vs gold score."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    left.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    if bins:
        left.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                  label="backend")
        for b in bins:
            left.annotate(str(b["count"]), (b["confidence"], b["accuracy"]), fontsize=7,
                          textcoords="offset points", xytext=(3, 3))
    else:
        left.text(0.5, 0.5, "backend reports no verdict confidence", ha="center", va="center")
    left.set_xlim(0, 1)
    left.set_ylim(0, 1)
    left.set_xlabel("verdict confidence")
    left.set_ylabel("verdict accuracy")
    left.set_title("Verdict calibration")
    left.legend(loc="upper left", fontsize=8)
    right.plot([0, 100], [0, 100], linestyle="--", color="grey")
    if points:
        right.scatter([g for g, _ in points], [p for _, p in points], s=10, alpha=0.6)
    for edge in (40, 60, 85):
        right.axvline(edge, color="lightgrey", linewidth=0.8)
        right.axhline(edge, color="lightgrey", linewidth=0.8)
    right.set_xlim(-2, 102)
    right.set_ylim(-2, 102)
    right.set_xlabel("gold score")
    right.set_ylabel("predicted score")
    right.set_title("Score calibration (band edges in grey)")
    try:
        return _png(fig)
    finally:
        plt.close(fig)


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _rows(pairs) -> str:
    return "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in pairs)


def render_html(summary: dict, points: Sequence[tuple[float, float]]) -> str:
    """The report page for a summary and its (gold, predicted) score pairs."""
    verdict = summary["verdict"]
    headline = [
        ("songs", summary["n"]), ("failed analyses", summary["n_errors"]),
        ("verdict accuracy", verdict["accuracy"]), ("verdict macro-F1", verdict["macro_f1"]),
        ("score MAE", summary["score"]["mae"]), ("score Pearson", summary["score"]["pearson"]),
        ("theme micro-F1", summary["themes"]["micro_f1"]),
        ("valid scripture share", summary["scripture"]["valid_share"]),
        ("calibration ECE", summary["calibration"]["ece"]),
        ("latency p50 (s)", summary["latency_s"]["p50"]),
        ("latency p95 (s)", summary["latency_s"]["p95"]),
        ("songs per minute", summary["songs_per_minute"]),
        ("peak memory (MiB)", summary["peak_rss_mib"]),
    ]
    if "repeat" in summary:
        headline.append((f"changed between {summary['repeat']['k']} repeats",
                         summary["repeat"]["changed_share"]))
    per_class = "".join(
        f"<tr><th>{html.escape(str(label))}</th><td>{_fmt(s['precision'])}</td>"
        f"<td>{_fmt(s['recall'])}</td><td>{_fmt(s['f1'])}</td><td>{s['support']}</td></tr>"
        for label, s in verdict["per_class"].items())
    baseline = _rows((f"{k}", v) for k, v in OWNER_BASELINE.items())
    title = (f"{summary.get('backend', '?')} {summary.get('model_version', '')} "
             f"on {summary.get('data', '?')}")
    confusion = confusion_png(verdict["confusion_matrix"], verdict["labels"])
    calibration = calibration_png(summary["calibration"]["bins"], points)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation: {html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}
table{{border-collapse:collapse;margin:1em 0}}th,td{{border:1px solid #ccc;padding:4px 8px;
text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>Evaluation: {html.escape(title)}</h1>
<p>Created {html.escape(str(summary.get('created_at', '')))}. Failed analyses count as the verdict
"error" with score 0.</p>
<h2>Headline</h2><table>{_rows(headline)}</table>
<h2>Per verdict</h2><table><tr><th>verdict</th><th>precision</th><th>recall</th><th>F1</th>
<th>support</th></tr>{per_class}</table>
<h2>Confusion matrix</h2>
<img alt="confusion matrix" src="data:image/png;base64,{confusion}">
<h2>Calibration</h2>
<img alt="calibration" src="data:image/png;base64,{calibration}">
<h2>Context</h2><p>The web app owner's fine-tuned GPT-4o-mini, on its own 138 held-out songs
(other songs than these, so not directly comparable):</p><table>{baseline}</table>
</body></html>
"""


def write_report(summary: dict, points: Sequence[tuple[float, float]], path: str | Path) -> Path:
    """Write `report.html` for a summary; returns its path."""
    path = Path(path)
    path.write_text(render_html(summary, points), encoding="utf-8")
    return path
