"""Quantize a float student and time float against INT8 (a quick check; the export is
`python -m training.quantize.export`).

    python -m training.quantize --student DIR [--out DIR] [--windows 4] [--repeats 5]
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from selah.int8 import ACTIVATION_MODES
from training.config import ConfigError, option, parse_config
from training.quantize.calibrate import quantize_student

PROG = "python -m training.quantize"


def state_bytes(state: dict) -> int:
    """Bytes of the tensors of a state dict."""
    return sum(t.numel() * t.element_size() for t in state.values())


def save_int8_state(model: nn.Module, path: str | Path) -> int:
    """Write the quantized model's state dict as safetensors; returns the file size in bytes."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})
    Path(path).chmod(0o644)  # safetensors writes 0600; the service may run as another user
    return Path(path).stat().st_size


def time_forward(model: nn.Module, windows: int, length: int, repeats: int,
                 vocab: int = 1000) -> float:
    """Median seconds of one forward over `windows` random windows of `length` tokens."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(100, vocab, (windows, length), generator=generator)
    mask = torch.ones_like(ids)
    index = torch.zeros(windows, dtype=torch.long)
    times = []
    with torch.inference_mode():
        model(ids, mask, index, 1)  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            model(ids, mask, index, 1)
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


@dataclass
class QuantizeConfig:
    """Settings of `python -m training.quantize`."""

    student: str = option("", "float student folder (student.json, model.safetensors, tokenizer)")
    out: str | None = option(None, "write the INT8 model.safetensors and quantization.json here")
    activations: str = option("int8", "int8: per-token int8 GEMM on CPU; float: weight-only",
                              choices=ACTIVATION_MODES)
    windows: int = option(4, "windows per timed forward pass", minimum=1, maximum=256)
    repeats: int = option(5, "timed forward passes (the median is reported)", minimum=1)

    def validate(self) -> None:
        """--student is required."""
        if not self.student:
            raise ConfigError("missing --student")


def run(config: QuantizeConfig) -> dict:
    """Quantize the student, time float against INT8 and report sizes; write them if `out`."""
    from selah.student import load_student

    model, featurizer, _description = load_student(config.student)
    float_ms = time_forward(model, config.windows, featurizer.max_length, config.repeats,
                            len(featurizer.tokenizer)) * 1000
    float_bytes = state_bytes(model.state_dict())
    info = quantize_student(model, config.activations)
    int8_ms = time_forward(model, config.windows, featurizer.max_length, config.repeats,
                           len(featurizer.tokenizer)) * 1000
    int8_bytes = state_bytes(model.state_dict())
    report = {"float_bytes": float_bytes, "int8_bytes": int8_bytes,
              "ratio": round(int8_bytes / float_bytes, 4), "windows": config.windows,
              "window_tokens": featurizer.max_length, "float_ms": round(float_ms, 1),
              "int8_ms": round(int8_ms, 1), "threads": torch.get_num_threads(),
              "quantization": {k: v for k, v in info.items() if k != "modules"},
              "quantized_modules": len(info["modules"])}
    if config.out:
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        report["file_bytes"] = save_int8_state(model, out / "model.safetensors")
        (out / "quantization.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    return report


def main(argv: list[str] | None = None) -> int:
    """`python -m training.quantize ...`: prints the size and speed report as JSON."""
    config = parse_config(QuantizeConfig, argv, PROG, __doc__.splitlines()[0])
    print(json.dumps(run(config), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
