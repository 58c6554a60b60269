"""`python -m training.labels --config FILE`: the teacher's soft labels for every song.

    python -m training.labels --teacher runs/teacher/final --data ../shared/data/songs.jsonl \\
        --out runs/teacher_labels.jsonl

For each song the teacher reads its prompt (`training.teacher.prompts`, the fine-tuning format) and
the answer is built field by field, no sampling:

- categorical fields (verdict, formation_risk, narrative_voice, lament_filter): the answer is
  teacher-forced up to the field (the teacher's own choices for the fields before it), every
  allowed value is scored as a continuation (its tokens and the JSON that follows it:
  `training.labels.scoring.Cursor.score`), and `teacher_logits` are those log-probabilities,
  `teacher_probs` their softmax at `temperature`. The argmax is fed on, and is the hard label.
- score (with `score`), themes and concerns (with `lists`): greedy decoding constrained to the
  schema (a number 0-100; catalogue names, each at most once, then the list's end). The lists'
  `teacher_probs` are 1 for the names chosen (a greedy answer has no distribution over sets).
- confidence: the probability of the chosen verdict.

With `window: chunks` each lyric window is read and the categorical distributions are averaged
(the greedy fields come from the first window). Output: JSONL, a provenance header (teacher
checkpoint and chat-template hashes, prompt, temperature, date pin), then one record per song,
keyed by the hash of the text the teacher read; a rerun skips songs already in the file. A
summary (teacher accuracy on the hold-out, seconds per song, peak memory) goes next to it.
"""

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selah.chat import PINNED_DATE
from selah.files import sha256_files
from selah.runtime import peak_rss_mib
from training.config import option, parse_config
from training.data.readers import holdout_split, read_examples
from training.evaluate.metrics import accuracy, macro_f1
from training.labels.scoring import Cursor, softmax
from training.teacher import prompts as fmt
from training.teacher.model import load_causal_lm, pick_device

PROG = "python -m training.labels"
FORMAT = "selah-teacher-labels-1"
ENCODER_SETTINGS = ("max_length", "answer_reserve", "window", "stride")


class LabelsError(RuntimeError):
    """Labelling that cannot start or continue; the message says what to do."""


@dataclass
class LabelsConfig:
    """Settings of one labelling run."""

    data: str | None = option(None, "labelled JSONL file (every song in it gets labels)")
    teacher: str | None = option(None, "the fine-tuned teacher (OUT/final of training.teacher), "
                                 "or any causal LM folder / hub id")
    gguf_file: str | None = option(None, "GGUF file inside `teacher`")
    out: str | None = option(None, "teacher-labels JSONL to write (appended to when resuming)")
    temperature: float = option(1.0, "softmax temperature of teacher_probs", minimum=0.01)
    score: bool = option(True, "also decode the score (greedy, constrained to 0-100)")
    lists: bool = option(True, "also decode themes and concerns (greedy, constrained)")
    max_items: int = option(10, "longest themes/concerns list decoded", minimum=1)
    max_length: int | None = option(None, "prompt length (None: the teacher's, from teacher.json)")
    answer_reserve: int | None = option(None, "answer tokens reserved (None: the teacher's)")
    window: str | None = option(None, "head or chunks (None: the teacher's)")
    stride: int | None = option(None, "chunk overlap (None: the teacher's)")
    holdout: float = option(0.15, "hold-out share, for the summary's accuracy", minimum=0.0)
    split_seed: int = option(0, "hold-out seed, for the summary's accuracy", minimum=0)
    order: str = option("file", "which songs first: file order, or holdout_first (the hold-out "
                        "songs, then the others in a seeded random order)",
                        choices=("file", "holdout_first"))
    max_songs: int | None = option(None, "label only the first N songs of that order (a rerun "
                                   "with more continues)", minimum=1)
    precision: str = option("auto", "weights' dtype (auto: bf16 on CUDA/MPS, fp32 on CPU)",
                            choices=("auto", "bf16", "fp32"))
    device: str = option("auto", "auto, cpu, cuda or mps", choices=("auto", "cpu", "cuda", "mps"))
    num_threads: int = option(0, "CPU threads (0: all cores)", minimum=0)
    progress: bool = option(True, "show a progress bar")


def song_hash(example: Any) -> str:
    """Digest of what the teacher reads of a song (title, artist, lyrics)."""
    text = "\n".join((example.title, example.artist, example.lyrics))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def folder_sha256(folder: str | Path) -> str | None:
    """One digest over a checkpoint folder's weight files (None for a hub id)."""
    files = sorted(Path(folder).glob("*.safetensors")) + sorted(Path(folder).glob("*.gguf"))
    if not files:
        return None
    return sha256_files(files)


class Labeller:
    """The teacher, its prompt encoder, and the per-song field-by-field reading."""

    def __init__(self, model: Any, encoder: fmt.Encoder, temperature: float = 1.0,
                 score: bool = True, lists: bool = True, max_items: int = 10):
        self.model = model.eval()
        self.encoder = encoder
        self.temperature = temperature
        self.score = score
        self.lists = lists and score  # the lists come after the score in the answer
        self.max_items = max_items

    def _categorical(self, cursor: Cursor) -> dict[str, list[float]]:
        """Log-probability of every allowed value of each categorical field, feeding on the
        most likely one."""
        ids = self.encoder.ids
        logits = {}
        for name, _, written, _ in fmt.CATEGORICAL:
            after = ids(fmt.literal_after(name))
            candidates = [ids(value) + after for value in written]
            logits[name] = cursor.score(candidates)
            cursor.feed(candidates[int(np.argmax(logits[name]))])
        return logits

    def _list(self, cursor: Cursor, names: tuple[str, ...], close: str) -> list[str]:
        ids = self.encoder.ids
        chosen: list[str] = []
        while len(chosen) < self.max_items:
            if chosen:  # after an item: another one, or the end of the list
                if cursor.choose([ids(fmt.BETWEEN_ITEMS), ids(close)]) == 1:
                    return chosen
            left = [n for n in names if n not in chosen]
            candidates = [ids(fmt.item(n)) for n in left] + ([] if chosen else [ids(close)])
            index = cursor.choose(candidates)
            if index == len(left):
                return chosen
            chosen.append(left[index])
        cursor.feed(ids(close))
        return chosen

    def _greedy(self, cursor: Cursor) -> dict:
        ids = self.encoder.ids
        greedy = {"score": cursor.choose([ids(str(n)) + ids(fmt.AFTER_SCORE) for n in range(101)])}
        if self.lists:
            (_, themes), (_, concerns) = fmt.LISTS
            greedy["themes"] = self._list(cursor, themes, fmt.AFTER_THEMES)
            greedy["concerns"] = self._list(cursor, concerns, fmt.CLOSE)
        return greedy

    @torch.inference_mode()
    def label(self, example: Any) -> dict:
        """The teacher-labels record of one song."""
        windows = self.encoder.prompts(example.title, example.artist, example.lyrics)
        per_window, greedy = [], {}
        for index, prompt in enumerate(windows):
            cursor = Cursor(self.model, prompt + self.encoder.ids(fmt.OPEN))
            per_window.append(self._categorical(cursor))
            if index == 0 and self.score:
                greedy = self._greedy(cursor)
        logits, probs, hard = {}, {}, {}
        for name, _, _, labels in fmt.CATEGORICAL:
            window_probs = np.array([softmax(w[name], self.temperature) for w in per_window])
            mean_logits = np.mean([w[name] for w in per_window], axis=0)
            logits[name] = {label: round(float(v), 5) for label, v in zip(labels, mean_logits)}
            probs[name] = {label: round(float(v), 6) for label, v in
                           zip(labels, window_probs.mean(axis=0))}
            hard[name] = max(probs[name], key=probs[name].get)
        record = {"song_id": example.song_id, "song_hash": song_hash(example),
                  "teacher_logits": logits, "teacher_probs": probs, "labels": hard,
                  "confidence": round(max(probs["verdict"].values()), 6),
                  "windows": len(windows)}
        if greedy:
            record["labels"].update(greedy)
            record["score"] = greedy["score"]
            for name, _ in fmt.LISTS:
                if name in greedy:
                    record["teacher_probs"][name] = {n: 1.0 for n in greedy[name]}
        return record


def read_done(path: Path, provenance: dict) -> set[str]:
    """Song hashes already in `path`; LabelsError when it was made by another teacher/setup."""
    if not path.is_file() or path.stat().st_size == 0:
        return set()
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    header = json.loads(lines[0]).get("provenance", {})
    same = {k: v for k, v in header.items() if k != "created"}
    if same != {k: v for k, v in provenance.items() if k != "created"}:
        changed = sorted(k for k in set(same) | set(provenance)
                         if k != "created" and same.get(k) != provenance.get(k))
        raise LabelsError(f"{path} was written with another teacher or setup ({', '.join(changed)}"
                          "); use another --out or delete it")
    done = set()
    for line in lines[1:]:
        try:
            done.add(json.loads(line)["song_hash"])
        except (json.JSONDecodeError, KeyError):
            break  # a line cut by an interrupted write: relabel from there
    return done


def _encoder_settings(config: LabelsConfig) -> dict:
    meta_path = Path(config.teacher) / "teacher.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    defaults = {"max_length": 512, "answer_reserve": 128, "window": "head", "stride": 32}
    settings = {k: getattr(config, k) if getattr(config, k) is not None
                else meta.get(k, defaults[k]) for k in ENCODER_SETTINGS}
    settings["system_prompt"] = meta.get("system_prompt", fmt.TEACHER_PROMPT)
    return settings


def run(config: LabelsConfig) -> dict:
    """Label every song of `config.data` not yet in `config.out`; the run's summary."""
    from tqdm.auto import tqdm

    if not config.data or not Path(config.data).is_file():
        raise LabelsError(f"data file {config.data} not found; pass --data FILE")
    if not config.teacher or not config.out:
        raise LabelsError("pass --teacher (the fine-tuned teacher folder) and --out FILE")
    device = pick_device(config.device)
    torch.set_num_threads(config.num_threads or os.cpu_count() or 1)
    everything, _ = read_examples(config.data)
    examples = everything
    if config.order == "holdout_first":
        development, holdout = holdout_split(everything, config.holdout, config.split_seed)
        shuffled = np.random.default_rng(config.split_seed).permutation(len(development))
        examples = holdout + [development[i] for i in shuffled]
    examples = examples[:config.max_songs] if config.max_songs else examples
    settings = _encoder_settings(config)
    dtype = torch.bfloat16 if (config.precision == "bf16" or (
        config.precision == "auto" and device.type in ("cuda", "mps"))) else torch.float32
    started = time.perf_counter()
    model, tokenizer = load_causal_lm(config.teacher, config.gguf_file, dtype)
    model.to(device)
    encoder = fmt.Encoder(tokenizer, **settings)
    provenance = {
        "format": FORMAT, "teacher": str(config.teacher), "teacher_sha256":
        folder_sha256(config.teacher) if Path(config.teacher).is_dir() else None,
        "chat_template_sha256": hashlib.sha256(tokenizer.chat_template.encode()).hexdigest(),
        "system_prompt": settings.pop("system_prompt"), **settings,
        "temperature": config.temperature, "score": config.score, "lists": config.lists,
        "date_pin": PINNED_DATE.isoformat(), "dtype": str(dtype).replace("torch.", ""),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = read_done(out, provenance)
    if not done:
        out.write_text(json.dumps({"provenance": provenance}) + "\n", encoding="utf-8")
    todo = [e for e in examples if song_hash(e) not in done]
    labeller = Labeller(model, encoder, config.temperature, config.score, config.lists,
                        config.max_items)
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with out.open("a", encoding="utf-8") as handle:
        for example in tqdm(todo, desc="teacher labels", disable=not config.progress):
            handle.write(json.dumps(labeller.label(example), ensure_ascii=False) + "\n")
            handle.flush()
    seconds = time.perf_counter() - started
    summary = {"out": str(out), "labelled": len(todo), "skipped": len(examples) - len(todo),
               "load_seconds": round(load_seconds, 1),
               "seconds_per_song": round(seconds / len(todo), 3) if todo else None,
               "peak_rss_mib": peak_rss_mib(), **teacher_accuracy(out, everything, config)}
    out.with_suffix(".summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def teacher_accuracy(path: Path, examples: list, config: LabelsConfig) -> dict:
    """The teacher's verdict accuracy and macro-F1 against gold, on the hold-out and on all."""
    records = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        if line.strip():
            record = json.loads(line)
            records[record["song_id"]] = record["labels"]["verdict"]
    _, holdout = holdout_split(examples, config.holdout, config.split_seed)
    result = {}
    for name, songs in (("holdout", holdout), ("all", examples)):
        songs = [e for e in songs if e.song_id in records]
        gold = [e.label.verdict for e in songs]
        predicted = [records[e.song_id] for e in songs]
        if songs:
            result[f"{name}_songs"] = len(songs)
            result[f"{name}_verdict_accuracy"] = round(accuracy(gold, predicted), 4)
            result[f"{name}_verdict_macro_f1"] = round(macro_f1(gold, predicted), 4)
    return result


def main(argv: list[str] | None = None) -> int:
    """`python -m training.labels --config FILE [--flag value ...]`."""
    config = parse_config(LabelsConfig, argv, PROG, __doc__.split("\n\n")[0])
    try:
        summary = run(config)
    except LabelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
