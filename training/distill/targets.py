"""Distillation targets for every head of the student, and the per-head losses.

Where each head's teacher comes from:

- verdict, formation_risk, narrative_voice, lament_filter: a teacher-labels file when given
  (`teacher_probs`), else the gold label as one-hot (its log is the teacher's logits: -inf off the
  gold class, which `kd_categorical` handles exactly). The hard label is the gold one; a song whose
  label lacks the field is masked out, unless the teacher covers it (then its argmax is the label).
- themes, concerns: the teacher's soft binary probabilities, else the gold 0/1 targets.
- score: the teacher's score, else gold; the head predicts score/100 through a sigmoid.
- concern_severity: cross-entropy on the gold severity of each concern the song has, no KD.
- sentiment, emotion, safety: `training.labels.signals.SignalTagger`, computed once per song and
  cached as JSONL. Emotion and safety scores are class probabilities and serve as soft teachers;
  VADER's neg/neu/pos scores are word proportions (neutral dominates even in clearly positive
  lyrics), not probabilities of its compound-based label, so sentiment uses its label as one-hot.

Teacher-labels file: JSONL, first a header `{"provenance": {...}}`, then one object per song:
`{"song_id": ..., "teacher_probs": {field: {label: p}, "themes": {name: p},
"concerns": {name: p}}, "score": 0-100 (optional)}` (`lament_filter` labels: not_applied/applied).
"""

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from selah import schema
from selah.student import HEAD_SPECS, song_text
from training.data.readers import Example
from training.distill.losses import kd_categorical, kd_multilabel, score_loss

SPECS = {spec.name: spec for spec in HEAD_SPECS}
LABEL_FIELDS = ("verdict", "formation_risk", "narrative_voice", "lament_filter")
SIGNAL_FIELDS = ("sentiment", "emotion", "safety")
SOFT_SIGNALS = ("emotion", "safety")
MULTILABEL_FIELDS = ("themes", "concerns")
ONE_HOT = "teacher: gold labels as one-hot"


class TeacherError(ValueError):
    """A teacher-labels file that cannot be used; the message names the file and line."""


def gold_value(label: schema.Label, name: str) -> str | None:
    """The gold class of a categorical label field (None when the label lacks it)."""
    if name == "lament_filter":
        flag = label.lament_filter_applied
        return None if flag is None else ("applied" if flag else "not_applied")
    return getattr(label, name)


def gold_items(label: schema.Label, name: str) -> list[str]:
    """The items of a multilabel field the label has: its themes, or its concerns' categories."""
    return list(label.themes) if name == "themes" else [c for c, _ in label.concerns]


@dataclass
class TeacherLabels:
    """A parsed teacher-labels file: provenance and `{song_id: record}`."""

    path: str
    provenance: dict
    records: dict


def _check_distribution(name: str, probs: dict, where: str) -> dict:
    labels = SPECS[name].labels
    unknown = sorted(set(probs) - set(labels))
    if unknown or not isinstance(probs, dict):
        raise TeacherError(f"{where}: {name} has labels {unknown}; valid: {', '.join(labels)}")
    values = {k: float(v) for k, v in probs.items()}
    if any(v < 0 or math.isnan(v) for v in values.values()) or sum(values.values()) <= 0:
        raise TeacherError(f"{where}: {name} probabilities must be >= 0 with a positive sum")
    total = sum(values.values())
    return {label: values.get(label, 0.0) / total for label in labels}


def read_teacher_labels(path: str | Path) -> TeacherLabels:
    """Read and check a teacher-labels JSONL file (header line first)."""
    path = Path(path)
    lines = [(n, t) for n, t in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if t.strip()]
    if not lines:
        raise TeacherError(f"{path}: empty teacher-labels file")
    try:
        objects = [(n, json.loads(t)) for n, t in lines]
    except json.JSONDecodeError as exc:
        raise TeacherError(f"{path}: bad JSON: {exc}") from None
    header_line, header = objects[0]
    if not isinstance(header, dict) or not isinstance(header.get("provenance"), dict):
        raise TeacherError(f"{path}:{header_line}: the first line must be "
                           '{"provenance": {...}} (which teacher, prompt, date)')
    records = {}
    for number, obj in objects[1:]:
        where = f"{path}:{number}"
        if not isinstance(obj, dict) or not isinstance(obj.get("song_id"), str):
            raise TeacherError(f"{where}: each record needs a song_id")
        probs = obj.get("teacher_probs") or {}
        record: dict = {}
        for name, value in probs.items():
            if name in MULTILABEL_FIELDS:
                valid = set(SPECS[name].labels)
                if not isinstance(value, dict) or set(value) - valid:
                    raise TeacherError(f"{where}: {name} must map catalogue names to "
                                       f"probabilities; unknown: {sorted(set(value) - valid)}")
                if any(not 0.0 <= float(p) <= 1.0 for p in value.values()):
                    raise TeacherError(f"{where}: {name} probabilities must be in [0, 1]")
                record[name] = {k: float(v) for k, v in value.items()}
            elif name in SPECS and SPECS[name].kind == "categorical":
                record[name] = _check_distribution(name, value, where)
            else:
                raise TeacherError(f"{where}: unknown teacher_probs field {name!r}")
        if obj.get("score") is not None:
            score = float(obj["score"])
            if not 0.0 <= score <= 100.0:
                raise TeacherError(f"{where}: score must be 0-100, got {score}")
            record["score"] = score
        records[obj["song_id"]] = record
    return TeacherLabels(str(path), header["provenance"], records)


def _lyrics_digest(example: Example) -> str:
    text = song_text(example.title, example.artist, example.lyrics)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def load_signals(examples: Sequence[Example], cache_path: str | Path) -> dict[str, dict]:
    """`{song_id: {field: {label, scores, source}}}` for sentiment/emotion/safety, computed with
    `SignalTagger` for songs missing from the JSONL cache (keyed by song_id and text digest)."""
    cache_path = Path(cache_path)
    cached: dict[str, dict] = {}
    if cache_path.is_file():
        for line in cache_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                cached[record["song_id"]] = record
    missing = [e for e in examples if cached.get(e.song_id, {}).get("digest") != _lyrics_digest(e)]
    if missing:
        from training.labels.signals import SignalTagger

        tagged = SignalTagger().tag_many([e.lyrics for e in missing],
                                         [e.label_signals for e in missing])
        for example, signals in zip(missing, tagged):
            cached[example.song_id] = {"song_id": example.song_id,
                                       "digest": _lyrics_digest(example),
                                       **{k: s.to_dict() for k, s in signals.items()}}
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in cached.values())
        cache_path.with_suffix(".tmp").write_text(body, encoding="utf-8")
        cache_path.with_suffix(".tmp").replace(cache_path)
    return {e.song_id: cached[e.song_id] for e in examples}


@dataclass
class Targets:
    """Stacked targets of N songs (rows follow the examples given to `build_targets`).

    categorical[name] = (teacher_logits [N, C] (log-probs, may be -inf), labels [N], mask [N]);
    multilabel[name] = (teacher_probs [N, K], targets [N, K]); severity [N, G] (-100: no
    concern); score_teacher, score_gold [N] on the 0-1 scale.
    """

    categorical: dict
    multilabel: dict
    severity: torch.Tensor
    score_teacher: torch.Tensor
    score_gold: torch.Tensor
    sources: dict = field(default_factory=dict)

    def to(self, device: torch.device) -> "Targets":
        """The same targets on another device."""
        return Targets({k: tuple(t.to(device) for t in v) for k, v in self.categorical.items()},
                       {k: tuple(t.to(device) for t in v) for k, v in self.multilabel.items()},
                       self.severity.to(device), self.score_teacher.to(device),
                       self.score_gold.to(device), self.sources)

    def take(self, rows: torch.Tensor) -> "Targets":
        """The targets of some songs."""
        return Targets({k: tuple(t[rows] for t in v) for k, v in self.categorical.items()},
                       {k: tuple(t[rows] for t in v) for k, v in self.multilabel.items()},
                       self.severity[rows], self.score_teacher[rows], self.score_gold[rows],
                       self.sources)


def _teacher_source(teacher: TeacherLabels, covered: int, total: int, fallback: str) -> str:
    name = teacher.provenance.get("teacher") or teacher.provenance.get("model") or "unnamed"
    return (f"teacher labels {Path(teacher.path).name} (teacher {name}) for {covered} of {total} "
            f"songs; {fallback} for the rest")


def _categorical(name: str, examples: Sequence[Example], records: list[dict],
                 signals: dict[str, dict]) -> tuple[tuple, int]:
    """(teacher log-probs [N, C], hard labels [N], mask [N]) of one categorical head, and how
    many songs the teacher file covered."""
    labels = SPECS[name].labels
    probs = torch.zeros(len(examples), len(labels))
    hard = torch.zeros(len(examples), dtype=torch.long)
    mask = torch.zeros(len(examples), dtype=torch.bool)
    covered = 0
    for row, (example, record) in enumerate(zip(examples, records)):
        signal = signals[example.song_id][name] if name in SIGNAL_FIELDS else None
        if name in record:
            distribution, covered = record[name], covered + 1
            gold = gold_value(example.label, name) if signal is None else None
        elif signal is not None:
            distribution = signal["scores"] if name in SOFT_SIGNALS else {signal["label"]: 1.0}
            gold = signal["label"]
        else:
            gold = gold_value(example.label, name)
            distribution = {gold: 1.0} if gold is not None else None
        if distribution is None:  # the label lacks the field and no teacher covers it
            continue
        values = torch.tensor([float(distribution.get(label, 0.0)) for label in labels])
        probs[row] = values / values.sum()
        hard[row] = labels.index(gold) if gold is not None else int(probs[row].argmax())
        mask[row] = True
    return (torch.log(probs), hard, mask), covered


def _multilabel(name: str, examples: Sequence[Example], records: list[dict]
                ) -> tuple[tuple, int]:
    """(teacher probs [N, K], gold 0/1 [N, K]) of themes or concerns, and the teacher's cover."""
    names = SPECS[name].labels
    gold = torch.zeros(len(examples), len(names))
    for row, example in enumerate(examples):
        for item in gold_items(example.label, name):
            gold[row, names.index(item)] = 1.0
    soft = gold.clone()
    covered = 0
    for row, record in enumerate(records):
        if name in record:
            covered += 1
            soft[row] = torch.tensor([record[name].get(item, 0.0) for item in names])
    return (soft, gold), covered


def build_targets(examples: Sequence[Example], signals: dict[str, dict],
                  teacher: TeacherLabels | None = None) -> Targets:
    """Targets of every head for `examples`, and the source of each field's teacher."""
    n = len(examples)
    records = [teacher.records.get(e.song_id, {}) if teacher else {} for e in examples]

    def source(covered: int, fallback: str) -> str:
        return _teacher_source(teacher, covered, n, fallback) if covered else fallback

    categorical, multilabel, sources = {}, {}, {}
    for name in LABEL_FIELDS + SIGNAL_FIELDS:
        categorical[name], covered = _categorical(name, examples, records, signals)
        fallback = ONE_HOT
        if name in SIGNAL_FIELDS:
            tools = " + ".join(sorted({signals[e.song_id][name]["source"] for e in examples}))
            fallback = tools + ("" if name in SOFT_SIGNALS else " label as one-hot")
        sources[name] = source(covered, fallback)
    for name in MULTILABEL_FIELDS:
        multilabel[name], covered = _multilabel(name, examples, records)
        sources[name] = source(covered, "teacher: gold labels as hard 0/1")
    severity = torch.full((n, len(schema.CONCERN_CATEGORIES)), -100, dtype=torch.long)
    for row, example in enumerate(examples):
        for category, level in example.label.concerns:
            group = schema.CONCERN_CATEGORIES.index(category)
            severity[row, group] = schema.SEVERITIES.index(level)
    sources["concern_severity"] = "gold severities (cross-entropy where the concern is present)"
    gold_score = torch.tensor([e.label.score / 100.0 for e in examples])
    teacher_score = torch.tensor([r.get("score", e.label.score) / 100.0
                                  for e, r in zip(examples, records)])
    sources["score"] = source(sum("score" in r for r in records), "teacher: gold score")
    return Targets(categorical, multilabel, severity, teacher_score, gold_score, sources)


def head_losses(logits: dict[str, torch.Tensor], targets: Targets, temperature: float,
                alpha: float) -> dict[str, torch.Tensor]:
    """`{head: scalar loss}` for a batch; heads with no usable row in the batch are left out."""
    losses = {}
    for name, (teacher, hard, mask) in targets.categorical.items():
        if mask.any():
            losses[name] = kd_categorical(logits[name][mask], teacher[mask], hard[mask],
                                          temperature, alpha)
    for name, (soft, gold) in targets.multilabel.items():
        losses[name] = kd_multilabel(logits[name], soft, gold, temperature, alpha)
    present = targets.severity != -100
    if present.any():
        groups = logits["concern_severity"].view(len(targets.severity), -1,
                                                 len(schema.SEVERITIES))
        losses["concern_severity"] = F.cross_entropy(groups[present], targets.severity[present])
    predicted = torch.sigmoid(logits["score"][:, 0])
    losses["score"] = score_loss(predicted, targets.score_teacher, targets.score_gold, alpha)
    return losses


def label_counts(examples: Sequence[Example]) -> dict:
    """Counts of every categorical gold field (for the checkpoint's metadata)."""
    counts: dict[str, dict] = {}
    for name in LABEL_FIELDS:
        for example in examples:
            value = gold_value(example.label, name)
            key = "missing" if value is None else value
            counts.setdefault(name, {}).setdefault(key, 0)
            counts[name][key] += 1
    return counts
