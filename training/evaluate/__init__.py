"""Evaluate: a backend over labelled songs (accuracy, agreement, consistency), results,
report.html and the metrics every stage reports.

Command: `python -m training.evaluate --data FILE` (`training.evaluate.run.main`).
"""
