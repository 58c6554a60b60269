"""Head outputs as probabilities: members averaged, temperature calibration, soft-label records.

Pure functions over `{head: tensor [N, width]}` dicts, in the head layout of `selah.student`
(`HEAD_SPECS`): categorical heads are softmax distributions, multilabel heads independent
sigmoids, the grouped head (concern severities) a softmax per group, the score head the score on
0-100.

Calibration (Guo et al., 2017, "On Calibration of Modern Neural Networks"): one temperature T per
head, p_T = softmax(log p / T) for a categorical head and sigmoid(logit(p) / T) for each item of a
multilabel head, T chosen to minimise the negative log-likelihood of gold labels the predictions
never saw (out-of-fold songs). Averaging probabilities first and calibrating the average keeps a
mix of teachers one teacher to the rest of the pipeline.
"""

from typing import Sequence

import torch

from selah.student import HEAD_SPECS
from training.distill.targets import gold_items, gold_value

SPECS = {spec.name: spec for spec in HEAD_SPECS}
# Heads a teacher labels: those the student's targets take from a teacher file.
LABELLED = ("verdict", "formation_risk", "narrative_voice", "lament_filter", "themes", "concerns")
TEMPERATURES = torch.logspace(-2.0, 3.0, 201, base=2.0)  # 0.25 .. 8, the search grid
EPS = 1e-6


def probabilities(logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Head logits -> probabilities (the score head -> the score on 0-100)."""
    out = {}
    for name, value in logits.items():
        spec = SPECS[name]
        value = value.float()
        if spec.kind == "categorical":
            out[name] = value.softmax(-1)
        elif spec.kind == "multilabel":
            out[name] = value.sigmoid()
        elif spec.kind == "grouped":
            n = value.size(0)
            out[name] = value.view(n, spec.groups, -1).softmax(-1).view(n, -1)
        else:
            out[name] = value.sigmoid() * 100.0
    return out


def logit(p: torch.Tensor) -> torch.Tensor:
    """log(p / (1 - p)), p kept EPS away from 0 and 1."""
    p = p.clamp(EPS, 1 - EPS)
    return (p / (1 - p)).log()


def gold_targets(name: str, examples: Sequence) -> tuple[list[int], torch.Tensor]:
    """(rows of `examples` whose label has the head's field, their gold targets): class indices
    [R] (categorical), 0/1 [R, K] (multilabel) or scores on 0-100 [R] (the score)."""
    spec = SPECS[name]
    if spec.kind == "regression":
        return list(range(len(examples))), torch.tensor([float(e.label.score) for e in examples])
    if spec.kind == "categorical":
        rows = [i for i, e in enumerate(examples) if gold_value(e.label, name) is not None]
        return rows, torch.tensor([spec.labels.index(gold_value(examples[i].label, name))
                                   for i in rows], dtype=torch.long)
    present = [set(gold_items(e.label, name)) for e in examples]
    return list(range(len(examples))), torch.tensor(
        [[float(item in p) for item in spec.labels] for p in present])


def as_logits(probs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `probabilities`: logits whose decoding gives back these probabilities."""
    out = {}
    for name, value in probs.items():
        spec = SPECS[name]
        if spec.kind in ("categorical", "grouped"):
            out[name] = value.clamp(min=EPS).log()
        else:
            out[name] = logit(value / 100.0 if spec.kind == "regression" else value)
    return out


def average(members: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of several members' probabilities, head by head (rows must match), each head
    over the members that give it (the lexical member gives no concern severities)."""
    names = dict.fromkeys(name for m in members for name in m)
    return {name: torch.stack([m[name] for m in members if name in m]).mean(0) for name in names}


def stack(table: dict[str, dict[str, torch.Tensor]], ids: Sequence[str]
          ) -> dict[str, torch.Tensor]:
    """`{head: [len(ids), width]}` from per-song `{song_id: {head: [width]}}`, in `ids` order."""
    return {name: torch.stack([table[s][name] for s in ids]) for name in table[ids[0]]}


def temper(probs: torch.Tensor, kind: str, temperature: float) -> torch.Tensor:
    """Probabilities [N, width] of one head at temperature T (categorical or multilabel)."""
    if kind == "categorical":
        return (probs.clamp(min=EPS).log() / temperature).softmax(-1)
    return (logit(probs) / temperature).sigmoid()


def nll(probs: torch.Tensor, kind: str, gold: torch.Tensor) -> float:
    """Mean negative log-likelihood of gold classes [N] (categorical) or 0/1 targets [N, K]."""
    if kind == "categorical":
        return float(-probs.clamp(min=EPS).log().gather(1, gold[:, None]).mean())
    p = probs.clamp(EPS, 1 - EPS)
    return float(-(gold * p.log() + (1 - gold) * (1 - p).log()).mean())


def fit_temperature(probs: torch.Tensor, kind: str, gold: torch.Tensor) -> float:
    """The T of `TEMPERATURES` with the least NLL of `gold` (1.0 when there is nothing to fit)."""
    if len(probs) == 0:
        return 1.0
    losses = [nll(temper(probs, kind, float(t)), kind, gold) for t in TEMPERATURES]
    return float(TEMPERATURES[min(range(len(losses)), key=losses.__getitem__)])


def calibrate(probs: dict[str, torch.Tensor], temperatures: dict[str, float]
              ) -> dict[str, torch.Tensor]:
    """Each head with a temperature tempered by it; the others unchanged."""
    return {name: temper(value, SPECS[name].kind, temperatures[name]) if name in temperatures
            else value for name, value in probs.items()}


def record(song_id: str, probs: dict[str, torch.Tensor], row: int, provenance: dict) -> dict:
    """One line of a teacher-labels file (`training.distill.targets` reads it) for a song."""
    teacher = {}
    for name in LABELLED:
        labels = SPECS[name].labels
        values = probs[name][row].tolist()
        teacher[name] = {label: round(float(v), 6) for label, v in zip(labels, values)}
    verdict = teacher["verdict"]
    return {"song_id": song_id, "teacher_probs": teacher,
            "score": round(float(probs["score"][row, 0]), 3),
            "confidence": round(max(verdict.values()), 6), "provenance": provenance}
