"""Stacked members: a stacker trusts the member that is right, falls back to the mean where it
has nothing to fit, and (in the heads teacher) never reads the fold it labels for."""

from types import SimpleNamespace

import torch

from selah.schema import Label
from training.teacher import ensemble, stacking
from tests.training.teacher.test_ensemble import random_logits

VERDICTS = ensemble.SPECS["verdict"].labels
THEMES = ensemble.SPECS["themes"].labels


def songs(n: int, seed: int = 0) -> list:
    """`n` examples with random verdicts, scores and themes (only `label` is read)."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        verdict = VERDICTS[int(torch.randint(4, (1,), generator=generator))]
        themes = tuple(t for t in THEMES[:6] if torch.rand(1, generator=generator) < 0.4)
        score = float(torch.randint(0, 101, (1,), generator=generator))
        out.append(SimpleNamespace(label=Label(score=score, verdict=verdict, themes=themes)))
    return out


def oracle(examples: list, sharpness: float = 3.0) -> dict[str, torch.Tensor]:
    """A member that leans towards every gold field: verdict, themes, score."""
    logits = random_logits(len(examples), 9)
    for row, e in enumerate(examples):
        logits["verdict"][row] = torch.zeros(4).index_fill(0, torch.tensor(
            VERDICTS.index(e.label.verdict)), sharpness) - 1.0
        logits["themes"][row] = torch.tensor([sharpness if t in e.label.themes else -sharpness
                                              for t in THEMES])
        logits["score"][row] = torch.logit(torch.tensor(e.label.score / 100).clamp(0.02, 0.98))
    return ensemble.probabilities(logits)


def test_the_stacker_trusts_the_member_that_is_right():
    train, test = songs(300, 0), songs(100, 1)
    heads = ("verdict", "themes", "score")
    members = [oracle(train), ensemble.probabilities(random_logits(300, 2))]
    stacker = stacking.fit(members, train, heads)
    weights = stacking.describe(stacker)
    for head in heads:
        assert weights[head][0] > 2 * abs(weights[head][1]), (head, weights[head])
    members = [oracle(test), ensemble.probabilities(random_logits(100, 3))]
    combined, mean = stacking.apply(stacker, members), ensemble.average(members)
    gold = torch.tensor([VERDICTS.index(e.label.verdict) for e in test])

    def nll(probs):
        return float(-probs.clamp(min=1e-6).log().gather(1, gold[:, None]).mean())

    assert nll(combined["verdict"]) < nll(mean["verdict"])
    truth = torch.tensor([e.label.score for e in test])
    error = {name: float((probs["score"][:, 0] - truth).abs().mean())
             for name, probs in (("stacked", combined), ("mean", mean))}
    assert error["stacked"] < error["mean"]
    assert torch.allclose(combined["verdict"].sum(-1), torch.ones(100), atol=1e-5)
    assert ((combined["score"] >= 0) & (combined["score"] <= 100)).all()


def test_heads_without_a_stacker_are_the_members_mean():
    members = [ensemble.probabilities(random_logits(5, seed)) for seed in (0, 1)]
    combined = stacking.apply({}, members)
    mean = ensemble.average(members)
    assert all(torch.equal(combined[name], mean[name]) for name in mean)


def test_a_field_no_song_has_is_not_fitted():
    examples = [SimpleNamespace(label=Label(score=50, verdict="caution_limit"))] * 4
    members = [ensemble.probabilities(random_logits(4, 0))]
    assert set(stacking.fit(members, examples, ("verdict", "formation_risk"))) == {"verdict"}
