"""Quantize: calibration (GPTQ, SmoothQuant), INT8 conversion and the checkpoint export
(`python -m training.quantize.export`).

Command: `python -m training.quantize --student DIR` (`training.quantize.run.main`).
"""
