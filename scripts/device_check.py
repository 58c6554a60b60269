"""Real-size checks on one GPU: gpt-oss-20b as the student, one GaLore step of Qwen3-8B.

    python scripts/device_check.py --out "$OUT"          # on a lent H100/H200, < 8 minutes
    python scripts/device_check.py --tiny --out /tmp/dc  # the same code path on CPU, seconds

No download: both models are built from their real configs (`selah.gptoss.GPTOSS_20B`,
`training.memory_plan.QWEN3_8B`) with random weights, directly on the device in bf16 (weights do
not change the cost). Parts, each under try/except and a time budget, so one failure still writes
the others:

1. gpt-oss-20b student: memory of the bf16 backbone + heads; heads-inference throughput on
   700-token songs at batch 1..32 (songs a minute, peak memory); then the same backbone quantized
   in place to INT8 (`training.quantize.calibrate.quantize_student`, experts included) with its
   memory, throughput, and verdict agreement and largest verdict-probability difference against the
   bf16 logits of the same 32 songs (the verdict head is aimed at what differs between them).
2. Qwen3-8B teacher: one GaLore AdamW step (rank 512 on the attention and MLP projections, AdamW on
   the rest) on one 1024-token sequence with gradient checkpointing, and its peak memory.

Writes `device_check.json` and `device_check.md` into `--out` (default `$OUT`). galore-torch is
pure Python: when the device lacks it, carry `.venv/lib/python3.11/site-packages/galore_torch`;
the script then appends that site-packages folder to `sys.path` (after the device's own torch).
"""

import argparse
import gc
import json
import os
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from selah.gptoss import GPTOSS_20B, backbone_from_config  # noqa: E402
from training.memory_plan import QWEN3_8B  # noqa: E402

TINY_GPTOSS = {**GPTOSS_20B, "hidden_size": 64, "num_hidden_layers": 2, "num_local_experts": 4,
               "num_experts_per_tok": 2, "intermediate_size": 64, "head_dim": 16,
               "num_attention_heads": 4, "num_key_value_heads": 2, "sliding_window": 16,
               "vocab_size": 512, "pad_token_id": 0, "eos_token_id": 1}
TINY_QWEN3 = {**QWEN3_8B, "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
              "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
              "vocab_size": 512}


def memory(device: torch.device) -> dict:
    """Allocated and peak bytes on a CUDA device (empty on CPU)."""
    if device.type != "cuda":
        return {}
    return {"allocated_gib": torch.cuda.memory_allocated(device) / 2 ** 30,
            "peak_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30}


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tensor_gib(model: torch.nn.Module) -> float:
    """Bytes of every parameter and buffer, in GiB."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2 ** 30


@contextmanager
def default_dtype(dtype: torch.dtype):
    """New tensors in `dtype` within the block (works whatever `from_config`'s dtype keyword is
    called in the device's transformers)."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


def build_student(config_dict: dict, device: torch.device, dtype: torch.dtype):
    """A gpt-oss student (backbone + heads, last-token pooling) with random weights, made on
    `device` directly (no CPU copy of 40 GB)."""
    from transformers import AutoConfig

    from selah.student import StudentModel

    values = dict(config_dict)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    with torch.device(device), default_dtype(dtype):
        backbone = backbone_from_config(config)
    with torch.device(device):  # the heads stay float32, as in training
        model = StudentModel(backbone, pooling="last_token", dropout=0.0)
    return model.eval()


def songs_batch(n: int, tokens: int, vocab: int, device: torch.device) -> dict:
    """`n` random one-window songs of `tokens` tokens (fixed seed)."""
    generator = torch.Generator().manual_seed(n)
    ids = torch.randint(2, vocab, (n, tokens), generator=generator)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "song_index": torch.arange(n, device=device), "n_songs": n}


def throughput(model, batches: list[int], tokens: int, vocab: int, device: torch.device,
               deadline: float) -> list[dict]:
    """Songs a minute and peak memory of heads inference at each batch size (until `deadline`)."""
    rows = []
    for batch in batches:
        if time.monotonic() > deadline:
            rows.append({"batch": batch, "skipped": "time budget"})
            continue
        inputs = songs_batch(batch, tokens, vocab, device)
        try:
            reset_peak(device)
            with torch.inference_mode():
                model(**inputs)  # warm-up
                sync(device)
                started = time.perf_counter()
                repeats = 2
                for _ in range(repeats):
                    model(**inputs)
                sync(device)
            seconds = (time.perf_counter() - started) / repeats
            rows.append({"batch": batch, "seconds": seconds, "songs_per_minute":
                         60 * batch / seconds, **memory(device)})
        except torch.OutOfMemoryError:
            rows.append({"batch": batch, "error": "out of memory"})
            gc.collect()
            torch.cuda.empty_cache()
    return rows


def aim_verdict_head(model, inputs: dict, spread: float = 3.0) -> None:
    """Verdict logits spread over about `spread` standard deviations across these songs."""
    with torch.inference_mode():
        pooled = model.encode(inputs["input_ids"], inputs["attention_mask"],
                              inputs["song_index"], inputs["n_songs"])
    head = model.heads["verdict"]
    with torch.no_grad():
        centred = pooled - pooled.mean(0)
        direction = torch.randn_like(head.weight)
        head.weight.copy_(direction * spread / (centred @ direction.t()).std())
        head.bias.copy_(-head.weight @ pooled.mean(0))


def gptoss_part(config: dict, device: torch.device, dtype: torch.dtype, tokens: int,
                batches: list[int], deadline: float, result: dict) -> None:
    """Part 1 (see the module doc); fills `result` as it goes."""
    from training.quantize.calibrate import quantize_student

    reset_peak(device)
    started = time.monotonic()
    model = build_student(config, device, dtype)
    result["build_seconds"] = time.monotonic() - started
    result["bf16"] = {"tensor_gib": tensor_gib(model), **memory(device)}
    probe = songs_batch(max(batches), tokens, config["vocab_size"], device)
    aim_verdict_head(model, probe)
    with torch.inference_mode():
        reference = model(**probe)["verdict"].float().softmax(-1).cpu()
    result["bf16"]["throughput"] = throughput(model, batches, tokens, config["vocab_size"],
                                              device, deadline)
    started = time.monotonic()
    # In place: a copy of the bf16 model would not fit beside it on an 80 GB card.
    info = quantize_student(model, activations="float")
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    result["quantize_seconds"] = time.monotonic() - started
    reset_peak(device)
    result["int8"] = {"tensor_gib": tensor_gib(model), "method": info["method"], **memory(device)}
    with torch.inference_mode():
        quantized = model(**probe)["verdict"].float().softmax(-1).cpu()
    result["agreement"] = {
        "songs": len(reference),
        "verdict_agreement": (reference.argmax(-1) == quantized.argmax(-1)).float().mean().item(),
        "max_verdict_probability_diff": (reference - quantized).abs().max().item()}
    result["int8"]["throughput"] = throughput(model, batches, tokens, config["vocab_size"],
                                              device, deadline)
    del model, probe


def import_galore():
    """`GaLoreAdamW`, importable without bitsandbytes (only galore's 8-bit optimizer needs it)."""
    import types

    venv = REPO / ".venv" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / \
        "site-packages"
    if venv.is_dir() and str(venv) not in sys.path:
        sys.path.append(str(venv))  # after the device's own packages: its torch wins
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        stub = types.ModuleType("bitsandbytes.optim.optimizer")
        stub.Optimizer2State = object
        for name in ("bitsandbytes", "bitsandbytes.optim"):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules["bitsandbytes.optim.optimizer"] = stub
    from galore_torch import GaLoreAdamW

    return GaLoreAdamW


def galore_part(config_dict: dict, device: torch.device, dtype: torch.dtype, tokens: int,
                rank: int, result: dict) -> None:
    """Part 2: one GaLore step of the teacher and its peak memory."""
    from transformers import AutoConfig, AutoModelForCausalLM

    galore_adamw = import_galore()
    values = dict(config_dict)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    reset_peak(device)
    started = time.monotonic()
    with torch.device(device), default_dtype(dtype):
        model = AutoModelForCausalLM.from_config(config)
    enable = getattr(model, "activation_checkpointing_enable", None) or \
        model.gradient_checkpointing_enable  # the name before transformers 5.2x
    enable()
    model.config.use_cache = False
    result["build_seconds"] = time.monotonic() - started
    result["weights"] = {"tensor_gib": tensor_gib(model), **memory(device)}
    targets = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    projected = [p for n, p in model.named_parameters()
                 if p.dim() == 2 and n.rsplit(".", 2)[-2] in targets]
    ids = {id(p) for p in projected}
    rest = [p for p in model.parameters() if id(p) not in ids]
    optimizer = galore_adamw([{"params": rest},
                              {"params": projected, "rank": rank, "update_proj_gap": 200,
                               "scale": 0.25, "proj_type": "std"}], lr=1e-5,
                              no_deprecation_warning=True)
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(0, config.vocab_size, (1, tokens), generator=generator).to(device)
    model.train()
    started = time.monotonic()
    loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sync(device)
    result.update(step_seconds=time.monotonic() - started, loss=loss.item(), rank=rank,
                  tokens=tokens, projected_matrices=len(projected), after_step=memory(device))
    del model, optimizer


def markdown(report: dict) -> str:
    """The report as Markdown tables."""
    lines = [f"# Device check ({report['device']}, {report['mode']})", ""]
    part = report.get("gptoss") or {}
    for kind in ("bf16", "int8"):
        if kind not in part:
            continue
        lines += [f"gpt-oss student {kind}: tensors {part[kind]['tensor_gib']:.2f} GiB, "
                  f"allocated {part[kind].get('allocated_gib', float('nan')):.2f} GiB", "",
                  "| batch | songs/min | peak GiB |", "|---:|---:|---:|"]
        for row in part[kind].get("throughput", []):
            if "songs_per_minute" in row:
                lines.append(f"| {row['batch']} | {row['songs_per_minute']:.0f} | "
                             f"{row.get('peak_gib', float('nan')):.2f} |")
            else:
                lines.append(f"| {row['batch']} | {row.get('error') or row.get('skipped')} | |")
        lines.append("")
    if "agreement" in part:
        a = part["agreement"]
        lines += [f"INT8 vs bf16 on {a['songs']} songs: verdict agreement "
                  f"{a['verdict_agreement']:.2%}, largest verdict-probability difference "
                  f"{a['max_verdict_probability_diff']:.4f}", ""]
    galore = report.get("galore") or {}
    if "step_seconds" in galore:
        lines += [f"Qwen3 GaLore step (rank {galore['rank']}, {galore['tokens']} tokens): "
                  f"{galore['step_seconds']:.1f} s, peak "
                  f"{galore['after_step'].get('peak_gib', float('nan')):.2f} GiB", ""]
    for name in ("gptoss", "galore"):
        if (report.get(name) or {}).get("error"):
            lines += [f"{name} failed: {report[name]['error']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the parts, then write the JSON and the Markdown (always, whatever failed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny configs on CPU (seconds)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "device_check_out")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="stop starting new measurements after this many seconds")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.tiny:
        device, dtype = torch.device("cpu"), torch.float32
        gptoss, qwen, tokens, batches, rank, galore_tokens = TINY_GPTOSS, TINY_QWEN3, 32, [1, 2], \
            8, 32
    else:
        if not torch.cuda.is_available():
            print("no CUDA device: run with --tiny on CPU", file=sys.stderr)
            return 2
        device, dtype = torch.device("cuda"), torch.bfloat16
        gptoss, qwen, tokens, batches, rank, galore_tokens = GPTOSS_20B, QWEN3_8B, 700, \
            [1, 2, 4, 8, 16, 32], 512, 1024
    report = {"mode": "tiny" if args.tiny else "real", "torch": torch.__version__,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "song_tokens": tokens, "gptoss": {}, "galore": {}}
    deadline = started + args.budget_s * 0.6  # leave the rest to the GaLore step
    for name, run in (("gptoss", lambda r: gptoss_part(gptoss, device, dtype, tokens, batches,
                                                       deadline, r)),
                      ("galore", lambda r: galore_part(qwen, device, dtype, galore_tokens, rank,
                                                       r))):
        if time.monotonic() - started > args.budget_s:
            report[name]["error"] = "skipped: time budget spent"
            continue
        try:
            run(report[name])
        except Exception as exc:  # one part failing must not lose the other's figures
            report[name]["error"] = f"{type(exc).__name__}: {exc}"
            report[name]["traceback"] = traceback.format_exc(limit=5)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    report["seconds"] = time.monotonic() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "device_check.json").write_text(json.dumps(report, indent=2))
    (out / "device_check.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if not any(report[n].get("error") for n in ("gptoss", "galore")) else 1


if __name__ == "__main__":
    raise SystemExit(main())
