"""Selah's training pipeline: label schema, data, teacher, distillation, evaluation, export.

Each stage is one module with a `python -m training.<stage>` command. `training.schema` is pure
standard library so the service may import it without the training dependencies.
"""
