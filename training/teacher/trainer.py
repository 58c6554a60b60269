"""`python -m training.teacher --config FILE`: supervised fine-tuning of a causal LM with GaLore.

    python -m training.teacher --config training/configs/teacher_embedded.yaml --out runs/teacher

Each song becomes the chat rendering of `training.teacher.prompts` (system prompt, the song, the
label JSON as the assistant's answer); the loss is the cross-entropy of the answer tokens only. The
optimizer is GaLore AdamW (`training.teacher.galore`) on the attention and MLP projections, plain
AdamW on the rest; linear warmup then linear decay; gradient clipping and accumulation; gradient
checkpointing; bf16 weights on CUDA/MPS, float32 on the CPU. Songs are split like the student's
(`holdout`: the development songs train, the hold-out songs validate), so the teacher never sees a
song the student is evaluated on. Each epoch reports the validation loss and verdict
accuracy/macro-F1 (verdict read by scoring each value's tokens, as `training.labels.soft` does).

OUT/last holds the weights and everything needed to resume exactly (optimizer with the GaLore
projectors as plain tensors, scheduler, counters, RNG), written every `save_every` optimizer steps
and at each epoch's end; OUT/final is the fine-tuned teacher (`from_pretrained` folder plus
teacher.json). Several GPUs: `accelerate launch --multi_gpu -m training.teacher ...` (DDP).
"""

import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selah.deps import require
from selah.files import replace_folder, sha256_file
from selah.runtime import peak_rss_mib
from training.config import parse_config, save_config
from training.data.readers import holdout_split, read_examples
from training.distill.train_state import rng_state, set_rng_state
from training.evaluate.metrics import accuracy, macro_f1
from training.labels.scoring import Cursor
from training.teacher import prompts as fmt
from training.teacher.config import RUNTIME_SETTINGS, TeacherConfig, TeacherError
from training.teacher.galore import (build_optimizer, load_optimizer_state, optimizer_state,
                                     param_groups)
from training.teacher.model import load_causal_lm, pick_device, refuse_sharding

PROG = "python -m training.teacher"
STATE_FILE = "trainer_state.pt"


def collate(batch: list[fmt.TrainingExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and labels (-100 on padding)."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), fmt.IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        ids[row, :len(e.input_ids)] = torch.tensor(e.input_ids)
        labels[row, :len(e.labels)] = torch.tensor(e.labels)
        mask[row, :len(e.input_ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def verdict_scores(model: Any, encoder: fmt.Encoder, prompt: list[int]) -> list[float]:
    """Log-probability of each verdict (its tokens and the JSON after it) after the answer's
    opening, teacher-forced on the prompt."""
    cursor = Cursor(model, prompt + encoder.ids(fmt.OPEN))
    after = encoder.ids(fmt.literal_after("verdict"))
    _, _, written, _ = fmt.CATEGORICAL[0]
    return cursor.score([encoder.ids(value) + after for value in written])


class TeacherTrainer:
    """One fine-tuning run: `setup()` checks, loads and builds; `train()` runs the epochs."""

    def __init__(self, config: TeacherConfig, argv: list[str] | None = None):
        self.config = config
        self.argv = argv
        self.out = Path(config.out or "runs/teacher")

    def run(self) -> dict:
        """Set up and train; the run's summary."""
        self.setup()
        return self.train()

    # -- setup ---------------------------------------------------------------------------------
    def setup(self) -> None:
        """Fail fast on bad options and devices, then load data, model and optimizer."""
        from accelerate import Accelerator

        c = self.config
        for module, purpose in (("galore_torch", "GaLore fine-tuning"),
                                ("accelerate", "the training loop"), ("tqdm", "progress bars")):
            require(module, purpose)
        if not c.data or not Path(c.data).is_file():
            raise TeacherError(f"data file {c.data} not found; pass --data FILE")
        self.device = pick_device(c.device)
        if c.eight_bit and self.device.type != "cuda":
            raise TeacherError("eight_bit needs bitsandbytes on CUDA; set eight_bit false")
        self.accelerator = Accelerator(cpu=self.device.type == "cpu")
        refuse_sharding(self.accelerator)
        torch.set_num_threads(c.num_threads or os.cpu_count() or 1)
        torch.manual_seed(c.seed)
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(c, self.out / "config.yaml", self.argv, PROG)
        examples, _ = read_examples(c.data)
        if c.split == "holdout":
            self.train_songs, self.val_songs = holdout_split(examples, c.holdout, c.split_seed)
        else:
            self.train_songs, self.val_songs = examples, []
        self.val_songs = self.val_songs[:c.eval_songs] if c.eval_songs else self.val_songs
        if c.max_train_songs and c.max_train_songs < len(self.train_songs):
            keep = np.random.default_rng([c.seed, 7]).permutation(len(self.train_songs))
            self.train_songs = [self.train_songs[i] for i in sorted(keep[:c.max_train_songs])]
        dtype = torch.bfloat16 if (c.precision == "bf16" or (
            c.precision == "auto" and self.device.type in ("cuda", "mps"))) else torch.float32
        self.model, self.tokenizer = load_causal_lm(c.model, c.gguf_file, dtype)
        if not c.train_embeddings:
            for module in (self.model.get_input_embeddings(), self.model.get_output_embeddings()):
                if module is not None:
                    module.weight.requires_grad_(False)
        self.dtype = dtype
        self.encoder = fmt.Encoder(self.tokenizer, c.max_length, c.answer_reserve, c.window,
                                   c.stride)
        self.sequences = [s for e in self.train_songs
                          for s in fmt.training_examples(self.encoder, e)]
        self.val_sequences = [s for e in self.val_songs
                              for s in fmt.training_examples(self.encoder, e)[:1]]
        if c.gradient_checkpointing:
            self.model.activation_checkpointing_enable({"use_reentrant": False})
        self.model.config.use_cache = False
        self.model.to(self.device)
        self.model = self.accelerator.prepare(self.model)
        self._build_optimizer()
        self.state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "history": []}
        if c.resume and (self.out / "last" / STATE_FILE).is_file():
            self._resume()

    def _build_optimizer(self) -> None:
        c = self.config
        model = self.accelerator.unwrap_model(self.model)
        groups = param_groups(model, c.galore_rank, c.galore_update_gap, c.galore_scale,
                              c.galore_proj_type, c.weight_decay, tuple(c.galore_targets))
        cpu_svd = c.svd_device == "cpu" or (c.svd_device == "auto" and self.device.type == "mps")
        micro = math.ceil(len(self.sequences) / c.batch_size)
        self.steps_per_epoch = max(1, math.ceil(micro / c.grad_accumulation))
        total = self.steps_per_epoch * c.epochs
        warmup = round(total * c.warmup_ratio)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (total - step) / max(1, total - warmup))

        if not c.layerwise:
            self.optimizers = {"all": build_optimizer(groups, c.lr, cpu_svd, c.eight_bit)}
        else:  # one optimizer per weight, stepped by a hook when its gradient is complete
            self.optimizers = {}
            names = {id(p): n for n, p in model.named_parameters()}
            for group in groups:
                for p in group["params"]:
                    single = {**group, "params": [p]}
                    self.optimizers[names[id(p)]] = build_optimizer([single], c.lr, cpu_svd,
                                                                    c.eight_bit)
            by_param = {id(p): self.optimizers[n] for n, p in model.named_parameters()
                        if n in self.optimizers}

            def hook(p: torch.Tensor) -> None:
                optimizer = by_param[id(p)]
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                self.schedulers[names[id(p)]].step()

            for p in model.parameters():
                if id(p) in by_param:
                    p.register_post_accumulate_grad_hook(hook)
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, schedule)
                           for k, o in self.optimizers.items()}

    def _resume(self) -> None:
        from safetensors.torch import load_model

        last = self.out / "last"
        saved = torch.load(last / STATE_FILE, weights_only=True)
        current = asdict(self.config)
        # A setting added after the run started counts as its default.
        before = {**asdict(TeacherConfig()), **saved["config"]}
        changed = [f"{k}: {before.get(k)!r} -> {current.get(k)!r}" for k in current
                   if k not in RUNTIME_SETTINGS and before.get(k) != current.get(k)]
        if changed:
            raise TeacherError(f"{last} was made with other settings ({'; '.join(changed)}); "
                               "use another --out, or --no-resume to start over")
        load_model(self.accelerator.unwrap_model(self.model), str(last / "model.safetensors"),
                   device=str(self.device))  # tied weights are stored once
        for key, optimizer in self.optimizers.items():
            load_optimizer_state(optimizer, saved["optimizers"][key])
            self.schedulers[key].load_state_dict(saved["schedulers"][key])
        set_rng_state(saved["rng"])
        self.state = {k: saved[k] for k in self.state}
        print(f"resuming {last}: epoch {self.state['epoch']}, step {self.state['global_step']}",
              file=sys.stderr)

    # -- training ------------------------------------------------------------------------------
    def _batches(self, epoch: int) -> list[list[int]]:
        """This epoch's micro-batches (this process's share): a permutation seeded by epoch."""
        order = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.sequences))
        size = self.config.batch_size
        batches = [[int(i) for i in order[s:s + size]] for s in range(0, len(order), size)]
        return batches[self.accelerator.process_index::self.accelerator.num_processes]

    def _micro_step(self, rows: list[int], sync: bool, scale: float) -> float:
        batch = collate([self.sequences[r] for r in rows], self.tokenizer.pad_token_id)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        context = (self.accelerator.no_sync(self.model) if not sync
                   else torch.enable_grad())
        with context:
            loss = self.model(**batch).loss
            self.accelerator.backward(loss * scale)
        return float(loss.detach())

    def _optimizer_step(self) -> None:
        if self.config.layerwise:
            return  # the hooks stepped every weight already
        if self.config.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizers["all"].step()
        self.schedulers["all"].step()
        self.optimizers["all"].zero_grad(set_to_none=True)

    def train(self) -> dict:
        """Train the remaining epochs (from OUT/last when resuming); the summary."""
        from tqdm.auto import tqdm

        c = self.config
        log = (self.out / "log.jsonl").open("a", encoding="utf-8")
        interrupted = False
        while self.state["epoch"] < c.epochs:
            epoch = self.state["epoch"]
            batches = self._batches(epoch)
            steps = [batches[i:i + c.grad_accumulation]
                     for i in range(0, len(batches), c.grad_accumulation)]
            started, losses = time.perf_counter(), []
            bar = tqdm(total=len(steps), initial=self.state["step_in_epoch"],
                       desc=f"teacher epoch {epoch + 1}/{c.epochs}", disable=not c.progress)
            self.model.train()
            for micro in steps[self.state["step_in_epoch"]:]:
                loss = sum(self._micro_step(rows, i == len(micro) - 1, 1 / len(micro))
                           for i, rows in enumerate(micro)) / len(micro)
                self._optimizer_step()
                losses.append(loss)
                self.state["step_in_epoch"] += 1
                self.state["global_step"] += 1
                lr = next(iter(self.schedulers.values())).get_last_lr()[0]
                log.write(json.dumps({"epoch": epoch, "step": self.state["global_step"],
                                      "loss": round(loss, 5), "lr": lr,
                                      "time": time.strftime("%H:%M:%S")}) + "\n")
                log.flush()
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
                if c.save_every and self.state["global_step"] % c.save_every == 0:
                    self.save(self.out / "last")
                if c.stop_after_steps and self.state["global_step"] >= c.stop_after_steps:
                    interrupted = True
                    break
            bar.close()
            if interrupted:
                self.save(self.out / "last")
                break
            record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else None,
                      "train_seconds": round(time.perf_counter() - started, 1),
                      **self.evaluate()}
            self.state["history"].append(record)
            self.state["epoch"] += 1
            self.state["step_in_epoch"] = 0
            print(json.dumps(record), file=sys.stderr)
            self.save(self.out / "last")
        log.close()
        if not interrupted:
            self.save_final(self.out / "final")
        summary = {"out": str(self.out), "interrupted": interrupted,
                   "global_step": self.state["global_step"], "history": self.state["history"],
                   "n_train_songs": len(self.train_songs), "n_sequences": len(self.sequences),
                   "n_val": len(self.val_songs), "peak_rss_mib": peak_rss_mib()}
        if not interrupted:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Validation answer loss and verdict accuracy / macro-F1 (value scoring, no sampling)."""
        if not self.val_songs:
            return {}
        from tqdm.auto import tqdm

        model = self.accelerator.unwrap_model(self.model)
        model.eval()
        losses, gold, predicted = [], [], []
        for example, sequence in tqdm(list(zip(self.val_songs, self.val_sequences)),
                                      desc="teacher eval", disable=not self.config.progress):
            batch = {k: v.to(self.device) for k, v in collate([sequence], 0).items()}
            losses.append(float(model(**batch).loss))
            answer_start = next(i for i, t in enumerate(sequence.labels) if t != fmt.IGNORE)
            prompt = sequence.input_ids[:answer_start]
            scores = verdict_scores(model, self.encoder, prompt)
            predicted.append(fmt.CATEGORICAL[0][3][int(np.argmax(scores))])
            gold.append(example.label.verdict)
        model.train()
        return {"val_loss": float(np.mean(losses)),
                "val_verdict_accuracy": accuracy(gold, predicted),
                "val_verdict_macro_f1": macro_f1(gold, predicted)}

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Weights and trainer state to `folder`, replacing it only once the copy is complete."""
        if not self.accelerator.is_main_process:
            return
        from safetensors.torch import save_model

        staging = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        save_model(self.accelerator.unwrap_model(self.model), str(staging / "model.safetensors"))
        torch.save({**self.state, "config": asdict(self.config), "rng": rng_state(),
                    "optimizers": {k: optimizer_state(o) for k, o in self.optimizers.items()},
                    "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()}},
                   staging / STATE_FILE)
        replace_folder(staging, folder)

    def save_final(self, folder: Path) -> None:
        """The fine-tuned teacher as a `from_pretrained` folder, with teacher.json."""
        if not self.accelerator.is_main_process:
            return
        model = self.accelerator.unwrap_model(self.model)
        model.config.use_cache = True
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        c = self.config
        meta = {"format": "selah-teacher-1", "base_model": c.model, "gguf_file": c.gguf_file,
                "data": c.data, "data_sha256": sha256_file(c.data), "split": c.split,
                "holdout": c.holdout, "split_seed": c.split_seed, "max_length": c.max_length,
                "answer_reserve": c.answer_reserve, "window": c.window, "stride": c.stride,
                "system_prompt": self.encoder.system_prompt, "history": self.state["history"],
                "dtype": str(self.dtype).replace("torch.", "")}
        (folder / "teacher.json").write_text(json.dumps(meta, indent=2))


def main(argv: list[str] | None = None) -> int:
    """`python -m training.teacher --config FILE [--flag value ...]`."""
    config = parse_config(TeacherConfig, argv, PROG, __doc__.split("\n\n")[0])
    summary = TeacherTrainer(config, argv=argv).run()
    print(json.dumps({k: summary[k] for k in ("out", "interrupted", "global_step", "history")},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
