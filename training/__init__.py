"""Selah's training pipeline, one sub-package per stage: data, teacher, labels, distill, quantize,
evaluate; `pipeline` chains them and `memory_plan` says whether each fits a machine.

Every stage stands on `selah` (the label schema, the student, the checkpoint format, INT8 layers,
inference); nothing in `app` imports from here. The map: `docs/architecture.md`.
"""
