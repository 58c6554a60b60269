"""Settings of a distillation run (`DistillConfig`), its error type, and how a split setting
(`fold:K/N`, `holdout`, `all`) picks the training and validation songs."""

import hashlib
from dataclasses import dataclass

from selah.student import HEAD_SPECS
from training.config import ConfigError, option
from training.data.readers import holdout_split, kfold
from training.distill.adapters import ADAPTERS
from training.distill.optim import OPTIMIZERS

SELECT = {"verdict_macro_f1": 1, "verdict_accuracy": 1, "score_mae": -1, "last": 0}
# Settings that do not change what a run computes; a resumed run may differ in these.
RUNTIME_SETTINGS = {"progress", "num_threads", "save_every", "stop_after_steps", "resume",
                    "feature_cache", "signals_cache", "eval_batch_size", "out",
                    "save_checkpoints"}


class DistillError(RuntimeError):
    """A run that cannot start or continue; the message says what to do."""


def parse_split(text: str) -> tuple:
    """`("fold", (K, ...), N)`, `("holdout",)` or `("all",)`; ConfigError otherwise.

    `fold:K/N` validates on fold K of N; `fold:J+K/N` on folds J and K together (training on the
    rest: a teacher that must not see two folds)."""
    if text in ("holdout", "all"):
        return (text,)
    if text.startswith("fold:"):
        try:
            ks, n = text[5:].split("/")
            folds, n = tuple(sorted({int(k) for k in ks.split("+")})), int(n)
        except ValueError:
            folds, n = (), -1
        if n >= 2 and folds and all(0 <= k < n for k in folds) and len(folds) < n:
            return ("fold", folds, n)
    raise ConfigError(f"split must be fold:K/N or fold:J+K/N (0 <= K < N, N >= 2), holdout or "
                      f"all; got {text!r}")


@dataclass
class DistillConfig:
    """Settings of one distillation run."""

    data: str | None = option(None, "labelled JSONL file (training, evaluation or chat format)")
    out: str | None = option(None, "output folder: best/, last/, tb/, config.yaml, history.json")
    backbone: str | None = option("packaged:all-MiniLM-L6-v2", "local folder, hub id, or "
                                  "packaged:all-MiniLM-L6-v2 (the model a pip package ships)")
    pooling: str = option("auto", "song vector: mean, last_token, or auto (by architecture)",
                          choices=("auto", "mean", "last_token"))
    max_length: int = option(256, "tokens per window", minimum=16, maximum=32768)
    stride: int = option(32, "tokens of overlap between windows", minimum=0)
    dropout: float = option(0.1, "dropout on the song vector before the heads",
                            minimum=0.0, maximum=0.9)
    epochs: int = option(4, "passes over the training songs", minimum=1, maximum=1000)
    batch_size: int = option(16, "songs per micro-batch", minimum=1, maximum=4096)
    grad_accumulation: int = option(1, "micro-batches per optimizer step", minimum=1, maximum=1024)
    lr_backbone: float = option(5e-5, "peak learning rate of the trained backbone layers",
                                minimum=0.0, maximum=1.0)
    lr_heads: float = option(2e-3, "peak learning rate of the heads", minimum=0.0, maximum=1.0)
    weight_decay: float = option(0.01, "AdamW weight decay", minimum=0.0, maximum=1.0)
    warmup_ratio: float = option(0.1, "share of steps with linear warmup (then linear decay)",
                                 minimum=0.0, maximum=1.0)
    max_grad_norm: float = option(1.0, "gradient clipping norm (0: none)", minimum=0.0)
    trainable_layers: int = option(2, "top transformer layers to fine-tune (0: frozen backbone, "
                                   "-1: all, embeddings included)", minimum=-1, maximum=1000)
    adapter: str = option("none", "LoRA on the trained layers instead of full fine-tuning: "
                          "lora-attention (q/k/v/o), lora-experts (gpt-oss fused experts), "
                          "lora-all, or none", choices=ADAPTERS)
    optimizer: str = option("adamw", "adamw, or galore: GaLore AdamW on the trained backbone "
                            "layers' 2-D weights (training.distill.optim)", choices=OPTIMIZERS)
    galore_rank: int = option(128, "GaLore projection rank r", minimum=1, maximum=65536)
    galore_update_gap: int = option(200, "optimizer steps between GaLore projection updates",
                                    minimum=1)
    galore_scale: float = option(0.25, "GaLore update scale", minimum=0.0)
    lora_rank: int = option(8, "LoRA rank r", minimum=1, maximum=4096)
    lora_alpha: float = option(16.0, "LoRA alpha (the update is scaled by alpha / r)",
                               minimum=0.0)
    prompt: str = option("auto", "text the student reads: plain (title, artist, lyrics), harmony "
                         "(gpt-oss chat prompt, pinned date), auto (harmony for gpt-oss)",
                         choices=("auto", "plain", "harmony"))
    cache_frozen: bool = option(True, "compute the frozen part once per song and reuse it")
    feature_cache: str | None = option(None, "folder keeping frozen features across runs")
    temperature: float = option(4.0, "KD temperature T", minimum=0.01, maximum=100.0)
    alpha: float = option(0.7, "weight of the KD term (1 - alpha: hard labels)",
                          minimum=0.0, maximum=1.0)
    loss_weights: list[str] = option([], "per-head loss weights NAME=WEIGHT (others weigh 1)")
    seed: int = option(0, "seed of initialisation, dropout and data order", minimum=0)
    split: str = option("holdout", "fold:K/N, holdout or all (see the module docstring)")
    split_seed: int = option(0, "seed of the holdout/fold assignment", minimum=0)
    holdout: float = option(0.15, "share of songs kept out as holdout", minimum=0.0, maximum=0.5)
    val_fraction: float = option(0.1, "split all: share of (trained-on) songs evaluated",
                                 minimum=0.01, maximum=1.0)
    teacher_labels: str | None = option(None, "teacher-labels JSONL (default: gold as one-hot)")
    views: int = option(0, "augmented views per training song (random runs of its lines; the "
                        "teacher file's label of a view, else its song's gold label)",
                        minimum=0, maximum=64)
    view_seed: int = option(0, "seed of the views", minimum=0)
    signals_cache: str | None = option(None, "sentiment/emotion/safety cache (OUT/signals.jsonl)")
    select_metric: str = option("verdict_macro_f1", "how OUT/best is chosen (last: final epoch)",
                                choices=tuple(SELECT))
    save_every: int = option(0, "also save OUT/last every N optimizer steps (0: each epoch)",
                             minimum=0)
    stop_after_steps: int | None = option(None, "stop after N optimizer steps, OUT/last saved "
                                          "(run again to resume)", minimum=1)
    resume: bool = option(True, "continue from OUT/last when it exists")
    save_checkpoints: bool = option(True, "write OUT/best and OUT/last (off: a teacher fit whose "
                                    "logits are all that is kept)")
    eval_batch_size: int = option(16, "songs per evaluation batch", minimum=1, maximum=4096)
    num_threads: int = option(0, "CPU threads (0: all cores)", minimum=0, maximum=1024)
    device: str = option("auto", "auto, cpu, cuda or mps", choices=("auto", "cpu", "cuda", "mps"))
    mixed_precision: str = option("no", "autocast dtype", choices=("no", "bf16", "fp16"))
    progress: bool = option(True, "show progress bars")

    def validate(self) -> None:
        """Settings that need each other."""
        for name in ("data", "out", "backbone"):
            if not getattr(self, name):
                raise ConfigError(f"{name} is required (--{name})")
        parse_split(self.split)
        self.head_weights()
        if self.stride >= self.max_length // 2:
            raise ConfigError(f"stride {self.stride} must be under half of max_length "
                              f"{self.max_length}")
        if self.optimizer == "galore" and (self.trainable_layers == 0 or self.adapter != "none"):
            raise ConfigError("optimizer galore projects the trained layers' own weights: set "
                              "trainable_layers to k > 0 or -1, with no adapter")
        if self.adapter != "none" and self.trainable_layers == 0:
            raise ConfigError(f"adapter {self.adapter} needs layers to adapt: set "
                              "trainable_layers to k > 0 (top k layers) or -1 (all)")

    def head_weights(self) -> dict[str, float]:
        """`{head: loss weight}` from `loss_weights`."""
        weights = {spec.name: 1.0 for spec in HEAD_SPECS}
        for item in self.loss_weights:
            name, _, value = item.partition("=")
            try:
                weight = float(value)
            except ValueError:
                weight = -1.0
            if name not in weights or weight < 0:
                raise ConfigError(f"loss_weights entry {item!r} must be NAME=WEIGHT >= 0 with NAME "
                                  f"one of {', '.join(weights)}")
            weights[name] = weight
        return weights


def split_examples(examples: list, config: DistillConfig) -> tuple[list, list, str]:
    """(training songs, validation songs, a sentence saying what the validation songs are)."""
    kind = parse_split(config.split)
    if kind[0] == "fold":
        folds = kfold(examples, kind[2], config.holdout, config.split_seed)
        val_ids = {e.song_id for k in kind[1] for e in folds[k][1]}
        train = [e for e in folds[kind[1][0]][0] if e.song_id not in val_ids]
        val = [e for e in examples if e.song_id in val_ids]
        named = " and ".join(str(k) for k in kind[1])
        return train, val, (f"fold{'s' if len(kind[1]) > 1 else ''} {named} of {kind[2]}-fold CV "
                            f"over the non-holdout songs (holdout {config.holdout}, split seed "
                            f"{config.split_seed})")
    if kind[0] == "holdout":
        train, val = holdout_split(examples, config.holdout, config.split_seed)
        return train, val, (f"train on the non-holdout songs, validate on the {config.holdout} "
                            f"holdout (split seed {config.split_seed})")
    ranked = sorted(examples, key=lambda e: hashlib.sha256(
        f"{config.split_seed}:{e.song_id}".encode()).hexdigest())
    val = ranked[:max(1, round(len(examples) * config.val_fraction))]
    return list(examples), val, ("train on every song; validation is a seeded slice of the "
                                 "training songs (a fit check, not a generalisation estimate)")
