"""Data: readers of the three label formats, normalisation, dedup and splits, the label report.

Command: `python -m training.data report FILE` (`training.data.report.main`).
"""
