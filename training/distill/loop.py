"""`python -m training.distill --config FILE`: train the student of `selah.student` by KD.

    python -m training.distill --config training/configs/student_embedded.yaml --out runs/embedded

Every head learns from its teacher (`training.distill.targets`: a teacher-labels file, else the gold
labels as one-hot, plus the offline sentiment/emotion/safety tools) with the KD losses of
`training.distill.losses`. The loop runs on `accelerate` (CPU here, CUDA or MPS elsewhere): AdamW
with one group for the backbone and one for the heads, linear warmup then decay, gradient clipping
and accumulation, a seeded data order. Each epoch is evaluated on the validation songs
(`selah.inference`), the best checkpoint goes to OUT/best (`save_student`, metadata included) and
the full training state to OUT/last, from which an interrupted run resumes exactly. TensorBoard
logs go to OUT/tb, the resolved config to OUT/config.yaml, per-epoch results to OUT/history.json.

What trains: the top `trainable_layers` layers in full (AdamW, or `optimizer: galore`:
`training.distill.optim`), or with `adapter` LoRA on their attention
projections and/or gpt-oss's fused experts (`training.distill.adapters`: the pretrained weights stay
frozen), and always the heads. A gpt-oss backbone reads each song as its harmony prompt (`prompt:
auto`).

Splits: `fold:K/N` trains on the other folds of N-fold CV over the non-holdout songs and validates
on fold K (`fold:J+K/N` on folds J and K together); `holdout` trains on all non-holdout songs and validates on the holdout; `all` trains on
every song and validates on a seeded slice of them (also trained on: a fit check only).
`views` adds augmented views of the training songs (`training.data.views`) to the training songs.
"""

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from selah.deps import require
from selah.files import sha256_file
from selah.gptoss import is_gptoss
from selah.inference import decode_logits
from selah.runtime import DeviceUnavailable, resolve_device
from selah.student import HEAD_SPECS, Featurizer, build_student, save_student
from training.config import parse_config, save_config
from training.data.readers import read_examples
from training.data.views import with_views
from training.distill import optim
from training.distill.adapters import apply_adapter, has_adapters, plain_state_dict, trainable_state
from training.distill.backbones import resolve_backbone
from training.distill.config import (RUNTIME_SETTINGS, SELECT, DistillConfig, DistillError,
                                     split_examples)
from training.distill.features import (FeatureStore, FreezePlan, apply_freeze, cache_agrees,
                                       collate, frozen_features, injected, set_train_mode,
                                       song_key)
from training.distill.targets import (ONE_HOT, build_targets, head_losses, label_counts,
                                      load_signals, read_teacher_labels)
from training.distill.train_state import (changed_settings, has_training_state, load_training_state,
                                          save_training_state)
from training.evaluate.metrics import evaluate_predictions

PROG = "python -m training.distill"
class Distiller:
    """One run: `setup()` loads data, targets, model, caches and optimizer; `train()` trains."""

    def __init__(self, config: DistillConfig, store: FeatureStore | None = None,
                 argv: list[str] | None = None, extra: list | None = None):
        self.config = config
        self.store = store or FeatureStore(config.feature_cache)
        self.argv = argv
        self.out = Path(config.out)
        self.extra = list(extra or [])  # songs to predict after training (`logits`), not trained

    def run(self) -> dict:
        """Set up and train; the run's summary (best and last epoch, history)."""
        self.setup()
        return self.train()

    # -- setup ---------------------------------------------------------------------------------
    def _fail_fast(self) -> None:
        c = self.config
        for module, purpose in (("accelerate", "the training loop"), ("tqdm", "progress bars"),
                                ("tensorboard", "TensorBoard logs (OUT/tb)")):
            require(module, purpose)
        if not Path(c.data).is_file():
            raise DistillError(f"data file {c.data} not found; pass --data FILE")
        if c.teacher_labels and not Path(c.teacher_labels).is_file():
            raise DistillError(f"teacher labels {c.teacher_labels} not found")
        try:
            cpu = resolve_device(c.device, "--device") == "cpu"
        except DeviceUnavailable as exc:
            raise DistillError(str(exc)) from None
        if c.mixed_precision == "fp16" and cpu:
            raise DistillError("fp16 autocast needs a GPU; use --mixed-precision bf16 or no")
        try:
            self.backbone_path = resolve_backbone(c.backbone)
        except ValueError as exc:
            raise DistillError(str(exc)) from None

    def setup(self) -> None:
        """Everything before the first step (fails before loading weights where it can)."""
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        c = self.config
        self._fail_fast()
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(c, self.out / "config.yaml", self.argv, PROG)
        examples, _ = read_examples(c.data)
        self.data_sha256 = sha256_file(c.data)
        self.train_examples, self.val_examples, self.split_note = split_examples(examples, c)
        if c.views:
            self.train_examples, views = with_views(self.train_examples, c.views, c.view_seed)
            self.split_note += f"; {len(views)} views of the training songs trained on too"
        train_ids = {e.song_id for e in self.train_examples}
        self.songs = self.train_examples + [e for e in self.val_examples
                                            if e.song_id not in train_ids]
        known = {e.song_id for e in self.songs}
        self.songs += [e for e in self.extra if e.song_id not in known]
        self.row = {e.song_id: i for i, e in enumerate(self.songs)}
        teacher = read_teacher_labels(c.teacher_labels) if c.teacher_labels else None
        signals = load_signals(self.songs, c.signals_cache or self.out / "signals.jsonl")
        self.targets = build_targets(self.songs, signals, teacher)
        self.teacher_note = (ONE_HOT if teacher is None else
                             f"teacher labels {teacher.path}: {json.dumps(teacher.provenance)}")
        self.teacher_provenance = teacher.provenance if teacher else {}
        torch.set_num_threads(c.num_threads or os.cpu_count() or 1)
        set_seed(c.seed)
        self.accelerator = Accelerator(cpu=c.device == "cpu", mixed_precision=c.mixed_precision)
        model, self.tokenizer = build_student(self.backbone_path, c.pooling, dropout=c.dropout)
        try:
            self.plan = apply_freeze(model, c.trainable_layers)
            if c.adapter != "none":  # LoRA on the layers apply_freeze opened; all else frozen
                apply_adapter(model, c.adapter, list(range(self.plan.n_frozen,
                                                           self.plan.n_layers)),
                              c.lora_rank, c.lora_alpha)
                self.plan = FreezePlan(self.plan.n_layers, self.plan.n_frozen, True)
        except ValueError as exc:
            raise DistillError(str(exc)) from None
        prompt = c.prompt if c.prompt != "auto" else \
            "harmony" if is_gptoss(model.backbone.config) else "plain"
        self.featurizer = Featurizer(self.tokenizer, c.max_length, c.stride, prompt)
        self.encoded = [{k: v for k, v in self.featurizer([e.song()]).items()
                         if k in ("input_ids", "attention_mask")} for e in self.songs]
        self.pad_id = self.tokenizer.pad_token_id
        model.to(self.accelerator.device)
        self.cache_kind = self.plan.cache_kind if c.cache_frozen else None
        self.frozen = self._frozen_features(model) if self.cache_kind else None
        try:
            optimizer = optim.build_optimizer(model, c)
        except ValueError as exc:
            raise DistillError(str(exc)) from None
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.steps_per_epoch = math.ceil(math.ceil(len(self.train_examples) / c.batch_size)
                                         / c.grad_accumulation)
        total = self.steps_per_epoch * c.epochs
        warmup = round(total * c.warmup_ratio)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: (step + 1) / warmup if step < warmup
            else max(0.0, (total - step) / max(1, total - warmup)))
        self.state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "history": [],
                      "best": None, "loss_sums": {}, "epoch_seconds": 0.0}
        if c.resume and has_training_state(self.out / "last"):
            self._resume()

    def _frozen_features(self, model) -> list[torch.Tensor] | None:
        """The frozen part's output per song (None when the cache self-check fails)."""
        keys = [song_key(e) for e in self.songs]
        frozen = frozen_features(model, self.plan, self.featurizer, self.encoded, keys,
                                 self.store, self.accelerator, self.config.eval_batch_size,
                                 self.config.progress)
        with self.accelerator.autocast():  # as the states were computed, and training runs
            agrees = self.cache_kind != "hidden" or cache_agrees(
                model, self.plan, self.encoded[:3], frozen[:3], self.pad_id)
        if not agrees:
            print(f"warning: cached frozen states of {type(model.backbone).__name__} do not "
                  "reproduce its forward pass; training without the cache", file=sys.stderr)
            self.cache_kind = None
            return None
        return frozen

    # -- steps ---------------------------------------------------------------------------------
    def forward(self, rows: list[int]) -> dict[str, torch.Tensor]:
        """Head logits of some songs, through the frozen cache when there is one."""
        device = self.accelerator.device
        model = self.accelerator.unwrap_model(self.model)
        with self.accelerator.autocast():
            if self.cache_kind == "pooled":  # StudentModel.forward after encode
                pooled = torch.stack([self.frozen[r] for r in rows]).to(device)
                return {name: head(model.dropout(pooled)).float()
                        for name, head in model.heads.items()}
            hidden = [self.frozen[r] for r in rows] if self.cache_kind == "hidden" else None
            batch = collate([self.encoded[r] for r in rows], self.pad_id, hidden)
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            if hidden is None:
                return self.model(**batch)
            with injected(model, self.plan.n_frozen, batch.pop("hidden")):
                return self.model(**batch)

    def evaluate(self, examples: list) -> dict:
        """Validation metrics of the current weights (`selah.inference` decoding)."""
        self.model.eval()
        rows = [self.row[e.song_id] for e in examples]
        predictions = []
        with torch.inference_mode():
            for start in range(0, len(rows), self.config.eval_batch_size):
                logits = self.forward(rows[start:start + self.config.eval_batch_size])
                predictions.extend(decode_logits(logits, HEAD_SPECS))
        return evaluate_predictions(examples, predictions)

    def logits(self, examples: list) -> dict[str, torch.Tensor]:
        """`{head: logits [len(examples), width]}` of the current weights (eval mode, float32 on
        the CPU); every song must be a training, validation or `extra` song of the run."""
        self.model.eval()
        rows = [self.row[e.song_id] for e in examples]
        parts: dict[str, list] = {}
        with torch.inference_mode():
            for start in range(0, len(rows), self.config.eval_batch_size):
                for name, value in self.forward(rows[start:start + self.config.eval_batch_size]
                                                ).items():
                    parts.setdefault(name, []).append(value.float().cpu())
        return {name: torch.cat(values) for name, values in parts.items()}

    def _batches(self, epoch: int) -> list[list[int]]:
        """This epoch's micro-batches of training rows: a permutation seeded by (seed, epoch)."""
        order = np.random.default_rng([self.config.seed, epoch]).permutation(
            len(self.train_examples))
        size = self.config.batch_size
        return [[int(r) for r in order[i:i + size]] for i in range(0, len(order), size)]

    def _step(self, micro: list[list[int]], weights: dict[str, float]) -> dict[str, float]:
        """One optimizer step over some micro-batches (losses weighted by songs)."""
        songs = sum(len(rows) for rows in micro)
        logged: dict[str, float] = {}
        for rows in micro:
            logits = self.forward(rows)
            targets = self.targets.take(torch.tensor(rows)).to(self.accelerator.device)
            losses = head_losses(logits, targets, self.config.temperature, self.config.alpha)
            total = sum(weights[name] * loss for name, loss in losses.items())
            self.accelerator.backward(total * len(rows) / songs)
            for name, loss in list(losses.items()) + [("total", total)]:
                logged[name] = logged.get(name, 0.0) + loss.detach().item() * len(rows) / songs
        if self.config.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return logged

    # -- loop ----------------------------------------------------------------------------------
    def train(self) -> dict:
        """Train from the current state to the last epoch (or `stop_after_steps`); the summary."""
        from torch.utils.tensorboard import SummaryWriter
        from tqdm.auto import tqdm

        c, state = self.config, self.state
        weights = c.head_weights()
        writer = SummaryWriter(str(self.out / "tb"), purge_step=state["global_step"] or None)
        try:
            while state["epoch"] < c.epochs:
                epoch = state["epoch"]
                batches = self._batches(epoch)
                bar = tqdm(total=self.steps_per_epoch, initial=state["step_in_epoch"],
                           desc=f"epoch {epoch + 1}/{c.epochs}", disable=not c.progress)
                for step in range(state["step_in_epoch"], self.steps_per_epoch):
                    if c.stop_after_steps and state["global_step"] >= c.stop_after_steps:
                        bar.close()
                        return self._summary(interrupted=True)
                    started = time.perf_counter()
                    set_train_mode(self.accelerator.unwrap_model(self.model), self.plan)
                    micro = batches[step * c.grad_accumulation:(step + 1) * c.grad_accumulation]
                    logged = self._step(micro, weights)
                    state["global_step"] += 1
                    state["step_in_epoch"] = step + 1
                    state["epoch_seconds"] += time.perf_counter() - started
                    for name, value in logged.items():
                        state["loss_sums"][name] = state["loss_sums"].get(name, 0.0) + value
                        writer.add_scalar(f"loss/{name}", value, state["global_step"])
                    for group in self.optimizer.param_groups:
                        writer.add_scalar(f"lr/{group['name']}", group["lr"], state["global_step"])
                    bar.set_postfix(loss=f"{logged['total']:.3f}")
                    bar.update()
                    stop = c.stop_after_steps and state["global_step"] >= c.stop_after_steps
                    if stop or (c.save_every and state["global_step"] % c.save_every == 0):
                        self._save_last()
                    if stop:
                        bar.close()
                        return self._summary(interrupted=True)
                bar.close()
                self._end_epoch(epoch, writer)
        finally:
            writer.close()
        return self._summary(interrupted=False)

    def _end_epoch(self, epoch: int, writer) -> None:
        """Evaluate, log, keep the best checkpoint, and save OUT/last at the epoch boundary."""
        from tqdm.auto import tqdm

        c, state = self.config, self.state
        started = time.perf_counter()
        metrics = self.evaluate(self.val_examples)
        steps = max(1, state["step_in_epoch"])
        record = {"epoch": epoch + 1, "train_seconds": round(state["epoch_seconds"], 2),
                  "eval_seconds": round(time.perf_counter() - started, 2),
                  "losses": {k: v / steps for k, v in sorted(state["loss_sums"].items())},
                  "metrics": metrics}
        state["history"].append(record)
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and value is not None:
                writer.add_scalar(f"val/{name}", value, state["global_step"])
        for name, value in metrics["recall"].items():
            writer.add_scalar(f"val/recall_{name}", value, state["global_step"])
        direction = SELECT[c.select_metric]
        value = metrics.get(c.select_metric)  # None for "last"
        best = state["best"]
        if best is None or direction == 0 or direction * (value - best["value"]) > 0:
            state["best"] = {"epoch": epoch + 1, "value": value, "metric": c.select_metric,
                             "metrics": metrics}
            student = self.accelerator.unwrap_model(self.model)
            if c.save_checkpoints:
                save_student(student, self.tokenizer, self.out / "best", self.featurizer,
                             self._meta(record), plain_state_dict(student))
        tqdm.write(f"epoch {epoch + 1}/{c.epochs}: loss {record['losses'].get('total', 0):.4f}, "
                   f"val acc {metrics['verdict_accuracy']:.3f} macro-F1 "
                   f"{metrics['verdict_macro_f1']:.3f} MAE {metrics['score_mae']:.2f} "
                   f"({record['train_seconds']:.0f} s train, {record['eval_seconds']:.0f} s eval)",
                   file=sys.stderr)
        state.update(epoch=epoch + 1, step_in_epoch=0, loss_sums={}, epoch_seconds=0.0)
        if c.save_checkpoints:
            self._save_last()
        (self.out / "history.json").write_text(json.dumps(state["history"], indent=2))

    # -- checkpoints ---------------------------------------------------------------------------
    def _meta(self, record: dict) -> dict:
        """What OUT/best's student.json says about how it was made."""
        return {"config": dataclasses.asdict(self.config), "epoch": record["epoch"],
                "metrics": record["metrics"], "select_metric": self.config.select_metric,
                "data": str(self.config.data), "data_sha256": self.data_sha256,
                "split": self.split_note, "n_train": len(self.train_examples),
                "n_val": len(self.val_examples), "teacher": self.teacher_note,
                "teacher_provenance": self.teacher_provenance,
                "teacher_sources": self.targets.sources,
                "label_counts": label_counts(self.train_examples),
                "backbone": self.config.backbone, "trainable_layers": self.config.trainable_layers,
                "adapter": self.config.adapter, "prompt": self.featurizer.prompt,
                "frozen_cache": self.cache_kind,
                "decoding": "verdict = argmax; score = sigmoid(score head) x 100 clamped into the "
                            "predicted verdict's band (raw value: raw_score)"}

    def _save_last(self) -> None:
        """The full training state to OUT/last (with adapters, their unmerged weights too)."""
        model = self.accelerator.unwrap_model(self.model)
        extra = {"trainable": trainable_state(model)} if has_adapters(model) else {}
        save_training_state(
            self.out / "last", model, self.tokenizer,
            self.featurizer, self._meta({"epoch": self.state["epoch"], "metrics": None}),
            {**self.state, **extra, "scheduler": self.scheduler.state_dict(),
             "optimizer": optim.state_dict(self.optimizer, self.config),
             "config": dataclasses.asdict(self.config)})

    def _resume(self) -> None:
        """Continue from OUT/last: weights, optimizer, scheduler, counters and RNG state."""
        last = self.out / "last"
        saved = torch.load(last / "trainer_state.pt", weights_only=True)
        # A setting added after the run started counts as its default (what the run used).
        defaults = dataclasses.asdict(DistillConfig())
        changed = changed_settings({**defaults, **saved["config"]}, dataclasses.asdict(self.config),
                                   RUNTIME_SETTINGS)
        if changed:
            raise DistillError(f"{last} was made with other settings ({'; '.join(changed)}); "
                               "use another --out, or --no-resume to start over")
        saved = load_training_state(last, self.accelerator.unwrap_model(self.model))
        optim.load_state_dict(self.optimizer, saved["optimizer"], self.config)
        self.scheduler.load_state_dict(saved["scheduler"])
        self.state = {k: saved[k] for k in self.state}

    def _summary(self, interrupted: bool) -> dict:
        history = self.state["history"]
        seconds = [h["train_seconds"] for h in history]
        summary = {"out": str(self.out), "split": self.split_note, "interrupted": interrupted,
                   "epochs_done": self.state["epoch"], "global_step": self.state["global_step"],
                   "best": self.state["best"], "last": history[-1] if history else None,
                   "train_seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
                   "n_train": len(self.train_examples), "n_val": len(self.val_examples),
                   "history": history}
        if not interrupted:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary


def main(argv: list[str] | None = None) -> int:
    """`python -m training.distill --config FILE [--flag value ...]`."""
    config = parse_config(DistillConfig, argv, PROG, __doc__.split("\n\n")[0])
    summary = Distiller(config, argv=argv).run()
    print(json.dumps({k: summary[k] for k in ("out", "best", "train_seconds_per_epoch")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
