"""Compare INT8 runtimes for the student's backbone on CPU: speed and fidelity against float32.

The measurement behind the choice in `selah/int8.py`. On all-MiniLM-L6-v2 (the packaged
backbone), random token windows of 256 tokens:

- float32 (reference);
- selah: int8 weights per output channel, int8 activations per token, `torch._int_mm`
  (`selah.int8`, what the checkpoint uses);
- torch.ao dynamic quantization (`torch.ao.nn.quantized.dynamic.Linear`, per-channel weights,
  per-tensor activations), deprecated in torch 2.10+;
- optimum-quanto `qint8` weights (float activations), if installed.

Fidelity is the smallest cosine between the float and quantized mean-pooled window vectors.

    .venv/bin/python scripts/bench_int8_libraries.py [--windows 4] [--repeats 5] [--threads 2]
"""

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def interleaved_ms(runs: dict, repeats: int) -> dict[str, dict]:
    """`{name: {min_ms, median_ms}}` of each `runs[name]()`, the variants taking turns in every
    round (after one warm-up call each), so that load from other processes hits all of them
    alike; the minimum is the least disturbed run."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: {"min_ms": round(min(t), 1), "median_ms": round(sorted(t)[len(t) // 2], 1)}
            for name, t in times.items()}


def swap_linears(model, build):
    """A copy of `model` with every nn.Linear replaced by `build(linear)`."""
    import torch

    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, build(child))
    return model


def torch_ao_dynamic(linear):
    """torch.ao's dynamic int8 Linear with symmetric per-channel weights."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, message=".*quantize_per_.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch")
        from torch.ao.nn.quantized.dynamic import Linear

        weight = linear.weight.detach()
        scale = (weight.abs().amax(1) / 127).clamp(min=1e-8).double()
        zero = torch.zeros(weight.size(0), dtype=torch.long)
        q = torch.quantize_per_channel(weight, scale, zero, 0, torch.qint8)
        module = Linear(linear.in_features, linear.out_features, dtype=torch.qint8)
        module.set_weight_bias(q, linear.bias.detach())
    return module


def main(argv: list[str] | None = None) -> int:
    """Print the comparison as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModel

    from selah.int8 import Int8Embedding, Int8Linear
    from training.distill.backbones import resolve_backbone

    if args.threads:
        torch.set_num_threads(args.threads)
    base = AutoModel.from_pretrained(resolve_backbone("packaged:all-MiniLM-L6-v2")).eval()
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (args.windows, 256), generator=generator)
    mask = torch.ones_like(ids)

    def pooled(model):
        with torch.inference_mode():
            return model(input_ids=ids, attention_mask=mask).last_hidden_state.mean(1)

    reference = pooled(base)
    selah = swap_linears(base, Int8Linear.from_float)
    selah.embeddings.word_embeddings = Int8Embedding.from_float(base.embeddings.word_embeddings)
    variants = {"float32": base, "selah int8 (torch._int_mm, per-token)": selah,
                "torch.ao dynamic (per-tensor, deprecated)": swap_linears(base, torch_ao_dynamic)}
    try:
        from optimum.quanto import freeze, qint8, quantize

        quanto = copy.deepcopy(base)
        quantize(quanto, weights=qint8)
        freeze(quanto)
        variants["optimum-quanto qint8 weights"] = quanto
    except ImportError:
        pass
    report = {"windows": args.windows, "tokens": 256, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "results": {}}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        timed = interleaved_ms({name: (lambda m=m: pooled(m)) for name, m in variants.items()},
                               args.repeats)
        for name, model in variants.items():
            cosine = torch.nn.functional.cosine_similarity(pooled(model), reference).min()
            report["results"][name] = {**timed[name], "min_cosine": round(float(cosine), 5)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
