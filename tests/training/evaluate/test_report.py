"""The evaluation report: self-contained HTML with its two plots."""

import base64

from training.evaluate.report import calibration_png, confusion_png, render_html

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plots_are_png_even_without_confidences():
    assert base64.b64decode(confusion_png([[2, 1], [0, 3]], ["a", "b"])).startswith(PNG_MAGIC)
    assert base64.b64decode(calibration_png([], [(50.0, 40.0)])).startswith(PNG_MAGIC)


def test_html_escapes_and_shows_missing_values_as_na():
    summary = {
        "backend": "<fake>", "model_version": "1", "data": "x.jsonl", "created_at": "now",
        "n": 2, "n_errors": 0,
        "verdict": {"accuracy": 0.5, "macro_f1": 0.5, "labels": ["a", "b"],
                    "per_class": {"a": {"precision": 1.0, "recall": 0.5, "f1": 0.667,
                                        "support": 2}},
                    "confusion_matrix": [[1, 1], [0, 0]]},
        "score": {"mae": 3.0, "pearson": None}, "themes": {"micro_f1": 0.0},
        "scripture": {"valid_share": None}, "calibration": {"ece": None, "bins": []},
        "latency_s": {"p50": 0.1, "p95": 0.2}, "songs_per_minute": 60.0, "peak_rss_mib": None,
    }
    page = render_html(summary, [(10.0, 12.0), (90.0, 80.0)])
    assert "&lt;fake&gt;" in page and "<fake>" not in page
    assert "<th>score Pearson</th><td>n/a</td>" in page
    assert page.count("data:image/png;base64,") == 2
