"""`python -m training.memory_plan`: will each pipeline stage fit in the device's memory?

    python -m training.memory_plan --model gpt-oss-20b --device m1-max-64gb \\
        --stages student-heads,student-lora,int8-export,serve
    python -m training.memory_plan --model qwen3-8b --device h100 --stages teacher-galore

From a model config (a built-in real config, or a config.json) it counts the parameters by kind
(embedding, attention, MLP or experts, norms, LM head), then estimates the peak memory of each
stage and compares it with what the device lets one process address. It exits 1, saying what to
change, when a stage asked for does not fit. Estimates, not measurements (`scripts/device_check.py`
measures on a GPU); the assumptions, all in bytes:

- weights: bf16 (2 per parameter); INT8 serving 1 per quantized parameter plus float32 scales,
  float norms, biases and router. The student keeps no LM head.
- training: AdamW states in float32 (8 per trained parameter) and bf16 gradients (2); LoRA
  matrices in float32 with gradients and states (16 per parameter). Activations of the trained
  layers are kept for backward (no checkpointing): per token and layer, the attention block's
  inputs and outputs (norm, q, k, v, attention output, o: 2 x (3H + 2 q + 2 kv)), eager
  attention's score and probability rows (2 x 2 x heads x window), and the MLP's (dense:
  2 x (H + 4I); experts: 2 x (H + k x (4I + H)) for the top-k experts). Frozen layers below run
  without a graph and cost one layer's activations at a time.
- teacher GaLore (Zhao et al. 2024): bf16 weights and gradients; for each projected 2-D matrix
  m x n (rank r, projection on the smaller side) the projector r x min(m, n) in bf16 and Adam's
  two moments r x max(m, n) in float32; AdamW on the rest; gradient checkpointing (one hidden
  state per layer and token, plus one layer's full activations) and float32 logits for the loss.
- labelling: bf16 weights, a KV cache of 2 x layers x kv-heads x head-dim x 2 bytes per token
  (sliding-window layers keep at most their window), one layer's activations.
- INT8 export (`training.quantize.export`): the float student, its deep copy being quantized, and
  the INT8 result (the copy's float tensors are freed as their INT8 replacements land, but both
  float models are alive at the start).

A stage fits when its peak is at most 90% of the device's addressable memory (allocator
fragmentation, the runtime, the tokenizer and Python need the rest).
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from selah.gptoss import GPTOSS_20B

GIB = 1024 ** 3
HEADROOM = 0.9

QWEN3_8B: dict = {  # Qwen/Qwen3-8B config.json (size fields)
    "model_type": "qwen3", "hidden_size": 4096, "num_hidden_layers": 36,
    "intermediate_size": 12288, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": False,
    "max_position_embeddings": 40960, "attention_bias": False,
}
MODELS = {"gpt-oss-20b": GPTOSS_20B, "qwen3-8b": QWEN3_8B}
# Memory one process can address. M1 Max: Metal's working-set limit is about 75% of the 64 GiB
# (recommendedMaxWorkingSetSize); H100: 80 GB of HBM less the CUDA context; a 24 GiB CPU box less
# the OS and the service.
DEVICES = {"m1-max-64gb": 48.0, "h100": 79.0, "h200": 139.0, "cpu-24gb": 22.0}
STAGES = ("teacher-galore", "teacher-label", "student-heads", "student-lora", "student-full",
          "int8-export", "serve")


@dataclass(frozen=True)
class Counts:
    """Parameters by kind, from a config; `matrices` are the 2-D weights GaLore projects."""

    embedding: int
    attention: int
    mlp: int
    norms: int
    lm_head: int
    layers: int
    matrices: tuple[tuple[int, int, int], ...]  # (rows, columns, how many)

    @property
    def total(self) -> int:
        """Every parameter of the causal LM (with its LM head)."""
        return self.embedding + self.attention + self.mlp + self.norms + self.lm_head

    @property
    def backbone(self) -> int:
        """The student's parameters: no LM head."""
        return self.total - self.lm_head


def count_parameters(config: dict) -> Counts:
    """Parameter counts of a gpt-oss (MoE) or dense decoder (Qwen3, Llama, Mistral) config."""
    h, n = config["hidden_size"], config["num_hidden_layers"]
    heads, kv = config["num_attention_heads"], config.get("num_key_value_heads") or \
        config["num_attention_heads"]
    hd = config.get("head_dim") or h // heads
    q, k = heads * hd, kv * hd
    bias = bool(config.get("attention_bias"))
    attention = h * q + 2 * h * k + q * h + (q + 2 * k + h if bias else 0)
    norms = 2 * h
    if config["model_type"] == "gpt_oss":
        experts, inter = config["num_local_experts"], config["intermediate_size"]
        attention += heads  # sinks
        mlp = experts * (h * 2 * inter + 2 * inter + inter * h + h) + experts * (h + 1)  # router
        mlp_matrices = ()  # fused 3-D experts: not GaLore targets
    elif config["model_type"] in ("qwen3", "qwen2", "llama", "mistral"):
        inter = config["intermediate_size"]
        mlp = 3 * h * inter
        mlp_matrices = ((h, inter, 3 * n),)
        if config["model_type"] == "qwen3":
            norms += 2 * hd  # q_norm, k_norm
    else:
        raise ValueError(f"model_type {config['model_type']!r} is not supported; valid: gpt_oss, "
                         "qwen3, qwen2, llama, mistral")
    embedding = config["vocab_size"] * h
    lm_head = 0 if config.get("tie_word_embeddings") else embedding
    return Counts(embedding, n * attention, n * mlp, n * norms + h, lm_head, n,
                  ((h, q, 2 * n), (h, k, 2 * n)) + mlp_matrices)


def activation_bytes_per_token(config: dict, window: int) -> float:
    """Bytes one token keeps for backward in one layer (bf16; see the module doc)."""
    h = config["hidden_size"]
    heads, kv = config["num_attention_heads"], config.get("num_key_value_heads") or \
        config["num_attention_heads"]
    hd = config.get("head_dim") or h // heads
    attention = 2 * (3 * h + 2 * heads * hd + 2 * kv * hd) + 2 * 2 * heads * window
    inter = config["intermediate_size"]
    if config["model_type"] == "gpt_oss":
        top_k = config["num_experts_per_tok"]
        mlp = 2 * (h + top_k * (4 * inter + h)) + 4 * config["num_local_experts"]
    else:
        mlp = 2 * (h + 4 * inter)
    return attention + mlp


@dataclass
class Settings:
    """What the stages run with."""

    windows: int = 8  # student: windows per training step
    tokens: int = 1024  # student: tokens per window (a 700-token song plus the harmony prompt)
    trainable_layers: int = -1  # student LoRA / full: top k layers (-1: all)
    lora_rank: int = 16
    serve_batch: int = 16  # songs (one window each) per serving forward pass
    galore_rank: int = 512
    teacher_tokens: int = 2048  # teacher: tokens per fine-tuning sequence
    teacher_batch: int = 1
    label_batch: int = 8
    label_tokens: int = 2048  # prompt plus generated answer


def _lora_parameters(config: dict, counts: Counts, layers: int, rank: int) -> int:
    h, heads = config["hidden_size"], config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    hd = config.get("head_dim") or h // heads
    attention = rank * ((h + heads * hd) * 2 + (h + kv * hd) * 2)  # q, o, k, v
    if config["model_type"] == "gpt_oss":  # experts: A [E r, in], B [out, E r] per tensor
        e, inter = config["num_local_experts"], config["intermediate_size"]
        experts = e * rank * (h + 2 * inter) + e * rank * (inter + h)
    else:
        experts = rank * (h + config["intermediate_size"]) * 3
    return layers * (attention + experts)


def stage_peaks(config: dict, s: Settings) -> dict[str, dict[str, float]]:
    """`{stage: {component: bytes}}` for every stage of `STAGES`."""
    c = count_parameters(config)
    trained_layers = c.layers if s.trainable_layers < 0 else min(s.trainable_layers, c.layers)
    per_layer = c.backbone / c.layers
    window = min(s.tokens, config.get("max_position_embeddings") or s.tokens)
    act = activation_bytes_per_token(config, window)
    student_tokens = s.windows * s.tokens
    one_layer = student_tokens * act  # frozen layers: one at a time, no graph
    peaks: dict[str, dict[str, float]] = {}

    teacher_tokens = s.teacher_batch * s.teacher_tokens
    projected = sum(m * n * k for m, n, k in c.matrices)
    galore_states = sum(k * (s.galore_rank * min(m, n) * 2 + 2 * s.galore_rank * max(m, n) * 4)
                        for m, n, k in c.matrices)
    peaks["teacher-galore"] = {
        "weights bf16": 2 * c.total, "gradients bf16": 2 * c.total,
        "GaLore projectors and moments": galore_states,
        "AdamW on the rest": 8 * (c.total - projected),
        "activations (checkpointed)": teacher_tokens * (2 * config["hidden_size"] * c.layers
                                                        + activation_bytes_per_token(
                                                            config, s.teacher_tokens)),
        "logits float32": 4 * teacher_tokens * config["vocab_size"],
    }
    kv = config.get("num_key_value_heads") or config["num_attention_heads"]
    hd = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    sliding = config.get("sliding_window") if config["model_type"] == "gpt_oss" else None
    cached = [s.label_tokens] * c.layers if not sliding else \
        [min(s.label_tokens, sliding), s.label_tokens] * (c.layers // 2)
    peaks["teacher-label"] = {
        "weights bf16": 2 * c.total,
        "KV cache": s.label_batch * sum(cached) * 2 * kv * hd * 2,
        "activations (one layer)": s.label_batch * s.label_tokens *
        activation_bytes_per_token(config, s.label_tokens),
    }
    peaks["student-heads"] = {"weights bf16": 2 * c.backbone, "activations (one layer)": one_layer}
    lora = _lora_parameters(config, c, trained_layers, s.lora_rank)
    peaks["student-lora"] = {
        "weights bf16": 2 * c.backbone, "LoRA float32 + grads + AdamW": 16 * lora,
        "activations (trained layers)": trained_layers * one_layer,
    }
    trained = trained_layers * per_layer
    peaks["student-full"] = {
        "weights bf16": 2 * c.backbone, "gradients bf16": 2 * trained,
        "AdamW float32": 8 * trained, "activations (trained layers)": trained_layers * one_layer,
    }
    int8 = c.backbone + 4 * (c.backbone / config["hidden_size"])  # + a float32 scale per row
    peaks["int8-export"] = {"float student bf16": 2 * c.backbone,
                            "its copy being quantized": 2 * c.backbone, "INT8 result": int8}
    peaks["serve"] = {"INT8 weights": int8, "activations (one layer)":
                      s.serve_batch * s.tokens * activation_bytes_per_token(config, s.tokens) / 2}
    return peaks


ADVICE = {
    "teacher-galore": "lower --galore-rank, shorter --teacher-tokens, layer-wise GaLore updates, "
                      "or fine-tune the teacher on a bigger device (it does not share memory well)",
    "teacher-label": "a smaller --label-batch or shorter --label-tokens, or label with a "
                     "quantized teacher (GGUF/INT8)",
    "student-heads": "the bf16 weights alone are too big: serve-style INT8 weights or MXFP4 "
                     "experts kept packed, or a bigger device",
    "student-lora": "fewer --trainable-layers (LoRA on the top layers only), shorter --tokens "
                    "windows, fewer --windows per step, or heads only",
    "student-full": "LoRA (student-lora) or heads only (student-heads); full fine-tuning keeps "
                    "AdamW states for every trained parameter",
    "int8-export": "export on a machine with more memory (the export holds the float student and "
                   "a copy), then copy the INT8 checkpoint over",
    "serve": "a smaller serving batch, shorter windows, or a smaller student",
}


def plan(config: dict, device: str, stages: list[str], settings: Settings) -> dict:
    """The table: each stage's components, peak and whether it fits `device`."""
    limit = DEVICES[device] * GIB * HEADROOM
    counts = count_parameters(config)
    peaks = stage_peaks(config, settings)
    rows = {}
    for stage in stages:
        peak = sum(peaks[stage].values())
        rows[stage] = {"peak_gib": peak / GIB, "fits": peak <= limit,
                       "components_gib": {k: v / GIB for k, v in peaks[stage].items()}}
    return {"device": device, "addressable_gib": DEVICES[device], "usable_gib": limit / GIB,
            "parameters": counts.total, "backbone_parameters": counts.backbone,
            "stages": rows}


def render(result: dict, model: str) -> str:
    """The plan as a Markdown table."""
    lines = [f"{model}: {result['parameters'] / 1e9:.2f} B parameters "
             f"({result['backbone_parameters'] / 1e9:.2f} B without the LM head); "
             f"{result['device']}: {result['addressable_gib']:.0f} GiB addressable, "
             f"{result['usable_gib']:.1f} GiB usable", "",
             "| stage | peak GiB | fits | largest parts (GiB) |", "|---|---:|---|---|"]
    for stage, row in result["stages"].items():
        parts = sorted(row["components_gib"].items(), key=lambda item: -item[1])[:3]
        detail = ", ".join(f"{name} {value:.1f}" for name, value in parts)
        lines.append(f"| {stage} | {row['peak_gib']:.1f} | {'yes' if row['fits'] else 'NO'} | "
                     f"{detail} |")
    return "\n".join(lines)


def load_model(name: str) -> dict:
    """A built-in config by name, or a config.json path."""
    if name in MODELS:
        return dict(MODELS[name])
    path = Path(name)
    if not path.is_file():
        raise ValueError(f"--model {name!r}: use {', '.join(MODELS)} or a config.json path")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    """Print the plan; exit 1 naming what to change when a stage does not fit."""
    parser = argparse.ArgumentParser(prog="python -m training.memory_plan",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help=f"{', '.join(MODELS)} or CONFIG_JSON")
    parser.add_argument("--device", required=True, choices=tuple(DEVICES))
    parser.add_argument("--stages", default=",".join(STAGES),
                        help=f"comma-separated, of {', '.join(STAGES)} (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    for name, value in vars(Settings()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=value)
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    unknown = [s for s in stages if s not in STAGES]
    try:
        if unknown:
            raise ValueError(f"unknown stages {', '.join(unknown)}; valid: {', '.join(STAGES)}")
        config = load_model(args.model)
        settings = Settings(**{k: getattr(args, k) for k in vars(Settings())})
        result = plan(config, args.device, stages, settings)
    except (ValueError, KeyError) as exc:
        parser.error(str(exc))
    print(json.dumps(result, indent=2) if args.json else render(result, args.model))
    failing = [stage for stage, row in result["stages"].items() if not row["fits"]]
    for stage in failing:
        row = result["stages"][stage]
        print(f"refused: {stage} needs about {row['peak_gib']:.1f} GiB, over the "
              f"{result['usable_gib']:.1f} GiB usable on {args.device}; change: {ADVICE[stage]}",
              file=sys.stderr)
    return 1 if failing else 0


if __name__ == "__main__":
    raise SystemExit(main())
