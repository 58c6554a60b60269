"""Which runtime runs the shipped student's backbone fastest here, and how faithfully?

One run on the same inputs and cores: the backbone of the INT8 checkpoint (16 windows of 256
random tokens, median of `--repeats` passes after a warm-up) through
- torch: the INT8 checkpoint as served (`int8`), compiled (`torch.compile`), and its weights
  dequantized to float32 and bf16 (`selah.int8.DequantizedLinear`);
- OpenVINO (if installed): the float32 model converted with `openvino.convert_model`, compiled
  for the CPU with f32 and bf16 inference precision, and the same model with the int8 weights
  kept as int8 constants (OpenVINO's compressed weights), with and without its dynamic
  quantization of activations;
- ONNX Runtime (if installed, with `onnx`): the float32 model exported by `torch.onnx.export`,
  and the same graph with ONNX Runtime's dynamic int8 quantization (`quantize_dynamic`).
Each is reported with its time, the ratio to torch float32 in this run, and the cosine and
largest difference of its hidden states to torch float32's. Also: the CPU flags that decide the
runtime and one linear layer's GEMM (4096 x 384 x 1536) in float32, bf16 and int8.

    .venv/bin/python scripts/bench_runtimes.py [--checkpoint DIR] [--repeats 5]
"""

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def median_ms(run, repeats: int) -> float:
    """Median wall time of `run()` in ms, after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def gemm_figures(repeats: int) -> dict:
    """One 4096 x 384 x 1536 GEMM in each precision (ms)."""
    import torch
    import torch.nn.functional as F

    x, w = torch.randn(4096, 384), torch.randn(1536, 384)
    xi = torch.randint(-127, 128, (4096, 384), dtype=torch.int8)
    wi = torch.randint(-127, 128, (384, 1536), dtype=torch.int8)
    xb, wb = x.bfloat16(), w.bfloat16()
    with torch.inference_mode():
        return {"float32": median_ms(lambda: F.linear(x, w), repeats * 4),
                "bf16": median_ms(lambda: F.linear(xb, wb), repeats * 4),
                "int8 (torch._int_mm)": median_ms(lambda: torch._int_mm(xi, wi), repeats * 4)}


def compressed_linear(int8_linear):
    """A float-input linear whose weight is the layer's int8 constant times its scales (what
    OpenVINO reads as a compressed weight)."""
    import torch
    from torch import nn

    class Compressed(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("q", int8_linear.weight_int8.clone())
            self.register_buffer("scale", int8_linear.weight_scale.clone().unsqueeze(1))
            self.register_buffer("bias", int8_linear.bias.clone())
            smooth = int8_linear.input_smooth
            self.register_buffer("smooth", torch.ones(int8_linear.in_features)
                                 if smooth is None else smooth.clone())

        def forward(self, x):
            return torch.nn.functional.linear(x / self.smooth, self.q.float() * self.scale,
                                              self.bias)

    return Compressed()


def main(argv: list[str] | None = None) -> int:
    """Print the comparison as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="", help="checkpoint folder (default: embedded)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per runtime")
    args = parser.parse_args(argv)

    import torch

    from selah.analyzers.gptoss import GPTOSSChristianAnalyzer
    from selah.int8 import Int8Linear, apply_runtime, set_module
    from selah.runtime import choose_runtime, cpu_flags

    analyzer = GPTOSSChristianAnalyzer.from_config(
        {"GPTOSS_MODEL_PATH": args.checkpoint, "GPTOSS_DEVICE": "cpu", "GPTOSS_RUNTIME": "int8"})
    student = analyzer.model
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (16, 256), generator=generator)
    mask = torch.ones_like(ids)
    flags = cpu_flags()
    report = {"model_version": analyzer.model_version, "threads": torch.get_num_threads(),
              "cpu_flags": sorted(f for f in flags if f.startswith(("amx", "avx512_bf16",
                                                                   "avx512_vnni", "avx_vnni"))),
              "auto_runtime": choose_runtime("auto", "cpu").name,
              "gemm_4096x384x1536_ms": gemm_figures(args.repeats), "backbone_16x256": {}}

    def backbone(runtime):
        return apply_runtime(copy.deepcopy(student), runtime).backbone.eval()

    reference = backbone("float32")  # built outside inference mode: OpenVINO traces it
    with torch.inference_mode():
        want = reference(input_ids=ids, attention_mask=mask).last_hidden_state
    rows = report["backbone_16x256"]

    def record(name, run, output=None):
        ms = median_ms(run, args.repeats)
        got = output if output is not None else run()
        cosine = torch.nn.functional.cosine_similarity(got.flatten(1).float(), want.flatten(1))
        rows[name] = {"ms": ms, "cosine_min": round(float(cosine.min()), 6),
                      "max_abs_diff": round(float((got.float() - want).abs().max()), 4)}

    with torch.inference_mode():
        for name in ("float32", "bf16", "int8"):
            model = backbone(name)
            record(f"torch {name}", lambda m=model: m(input_ids=ids,
                                                      attention_mask=mask).last_hidden_state)
        compiled = torch.compile(backbone("int8"), dynamic=True)
        started = time.perf_counter()
        compiled(input_ids=ids, attention_mask=mask)
        rows["torch int8 compiled: compile seconds"] = round(time.perf_counter() - started, 1)
        record("torch int8 compiled", lambda: compiled(input_ids=ids,
                                                       attention_mask=mask).last_hidden_state)
    float_model = reference
    compressed = copy.deepcopy(student.backbone)
    for name, module in list(compressed.named_modules()):
        if isinstance(module, Int8Linear):
            set_module(compressed, name, compressed_linear(module))
    inputs = {"input_ids": ids, "attention_mask": mask}
    try:
        import openvino as ov

        core = ov.Core()
        for label, model in (("float32 model", float_model), ("int8 weights", compressed)):
            converted = ov.convert_model(model.eval(), example_input=inputs)
            for precision, extra in (("f32", {}), ("bf16", {}),
                                     ("f32", {"DYNAMIC_QUANTIZATION_GROUP_SIZE": "32"})):
                settings = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
                            **extra}
                compiled_ov = core.compile_model(converted, "CPU", settings)
                feed = {k: v.numpy() for k, v in inputs.items()}

                def run(c=compiled_ov, f=feed):
                    return torch.from_numpy(next(iter(c(f).values())))

                suffix = " dynamic-quantized activations" if extra else ""
                record(f"OpenVINO {ov.__version__} {label} {precision}{suffix}", run)
    except ImportError as exc:
        rows["OpenVINO"] = f"not installed ({exc})"
    try:
        import onnxruntime as ort

        from onnxruntime.quantization import QuantType, quantize_dynamic

        class Hidden(torch.nn.Module):  # positional inputs, one tensor out: what export takes
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask):
                return self.model(input_ids=input_ids,
                                  attention_mask=attention_mask).last_hidden_state

        with tempfile.TemporaryDirectory() as folder:
            path, quantized = Path(folder) / "backbone.onnx", Path(folder) / "backbone-int8.onnx"
            torch.onnx.export(Hidden(float_model), (ids, mask), str(path), dynamo=False,
                              input_names=["input_ids", "attention_mask"],
                              output_names=["last_hidden_state"],
                              dynamic_axes={name: {0: "windows", 1: "tokens"} for name in
                                            ("input_ids", "attention_mask",
                                             "last_hidden_state")})
            quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
            feed = {k: v.numpy() for k, v in inputs.items()}
            for label, model_path in (("float32", path), ("dynamic int8", quantized)):
                session = ort.InferenceSession(str(model_path),
                                               providers=["CPUExecutionProvider"])
                record(f"ONNX Runtime {ort.__version__} {label}",
                       lambda s=session: torch.from_numpy(s.run(None, feed)[0]))
    except Exception as exc:  # noqa: BLE001 - an exporter or runtime that is missing or fails
        rows["ONNX Runtime"] = f"not measured ({type(exc).__name__}: {str(exc)[:200]})"
    base = rows["torch float32"]["ms"]
    for row in rows.values():
        if isinstance(row, dict):
            row["speed_vs_torch_float32"] = round(base / row["ms"], 2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
