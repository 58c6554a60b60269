"""Distill: the student's training loop, targets and KD losses, frozen-feature cache, LoRA
adapters, cross-validation (`python -m training.distill.crossval`).

Command: `python -m training.distill --config FILE` (`training.distill.loop.main`).
"""
