"""Teacher probabilities: decoding round trip, averaging, temperature calibration, records."""

import json

import pytest
import torch

from selah.inference import decode_logits
from selah.student import HEAD_SPECS
from training.distill.targets import read_teacher_labels
from training.teacher import ensemble


def random_logits(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {spec.name: torch.randn(n, spec.width, generator=generator) * 2 for spec in HEAD_SPECS}


def test_as_logits_decodes_to_the_same_probabilities():
    logits = random_logits(5)
    probs = ensemble.probabilities(logits)
    direct = decode_logits(logits, HEAD_SPECS)
    back = decode_logits(ensemble.as_logits(probs), HEAD_SPECS)
    for a, b in zip(direct, back):
        assert a["verdict"] == b["verdict"]
        assert a["raw_score"] == pytest.approx(b["raw_score"], abs=1e-3)
        for name in ("verdict", "themes", "formation_risk"):
            for label, p in a["heads"][name].items():
                assert b["heads"][name][label] == pytest.approx(p, abs=1e-4)
    groups = probs["concern_severity"].view(5, -1, 4)
    assert torch.allclose(groups.sum(-1), torch.ones_like(groups.sum(-1)))


def test_average_is_the_mean_of_the_members():
    a, b = ensemble.probabilities(random_logits(3, 0)), ensemble.probabilities(random_logits(3, 1))
    mean = ensemble.average([a, b])
    assert torch.allclose(mean["verdict"], (a["verdict"] + b["verdict"]) / 2)
    assert torch.allclose(mean["score"], (a["score"] + b["score"]) / 2)


def test_a_head_one_member_lacks_is_the_mean_of_the_others():
    a, b, c = (ensemble.probabilities(random_logits(3, seed)) for seed in (0, 1, 2))
    del c["concern_severity"]
    mean = ensemble.average([a, c, b])
    assert torch.allclose(mean["concern_severity"],
                          (a["concern_severity"] + b["concern_severity"]) / 2)
    assert torch.allclose(mean["verdict"], (a["verdict"] + b["verdict"] + c["verdict"]) / 3)


def test_temperature_fitting_softens_an_overconfident_teacher():
    generator = torch.Generator().manual_seed(0)
    n, classes = 4000, 4
    truth = torch.randint(0, classes, (n,), generator=generator)
    signal = torch.randn(n, classes, generator=generator)
    signal[torch.arange(n), truth] += 1.0
    calibrated = signal.softmax(-1)  # the true distribution of this toy data
    overconfident = (signal * 3).softmax(-1)
    t = ensemble.fit_temperature(overconfident, "categorical", truth)
    assert 2.5 < t < 3.5  # undoes the factor 3
    assert ensemble.nll(ensemble.temper(overconfident, "categorical", t), "categorical",
                        truth) < ensemble.nll(overconfident, "categorical", truth)
    assert ensemble.fit_temperature(calibrated, "categorical", truth) == pytest.approx(1.0,
                                                                                       abs=0.1)
    # multilabel: the same on each item's logit
    items = torch.rand(n, 3, generator=generator)
    gold = (torch.rand(n, 3, generator=generator) < items).float()
    sharp = ensemble.temper(items, "multilabel", 0.5)  # logits doubled
    assert 1.8 < ensemble.fit_temperature(sharp, "multilabel", gold) < 2.2
    assert ensemble.fit_temperature(torch.zeros(0, 4), "categorical", torch.zeros(0)) == 1.0


def test_records_are_a_teacher_labels_file(tmp_path):
    probs = ensemble.probabilities(random_logits(2))
    lines = [json.dumps({"provenance": {"teacher": "test"}})]
    lines += [json.dumps(ensemble.record(f"song{i}", probs, i, {"fit": "fold 0 held out"}))
              for i in range(2)]
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(lines) + "\n")
    teacher = read_teacher_labels(path)
    record = teacher.records["song1"]
    assert set(record) == set(ensemble.LABELLED) | {"score"}
    assert record["score"] == pytest.approx(float(probs["score"][1, 0]), abs=1e-3)
    assert sum(record["verdict"].values()) == pytest.approx(1.0)
