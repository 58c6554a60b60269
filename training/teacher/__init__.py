"""Teacher: GaLore fine-tuning of a causal LM on the chat rendering, answer-only loss.

Command: `python -m training.teacher --config FILE` (`training.teacher.trainer.main`).
"""
