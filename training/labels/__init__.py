"""Labels: the teacher's soft labels (candidate scoring), LM scoring helpers, offline signals.

Command: `python -m training.labels --config FILE` (`training.labels.soft.main`).
"""
