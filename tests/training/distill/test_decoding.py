"""The decoding fitted on out-of-fold songs: sigma from the score head's errors, T by NLL."""

import math

import pytest
import torch

from selah import schema
from selah.student import HEAD_SPECS
from training.data.readers import Example
from training.distill import decoding


def songs_and_logits(n: int, seed: int, overconfidence: float = 3.0):
    """Songs whose gold score is uniform, a score head off by N(0, 6^2) and a verdict head
    that is right 70% of the time but states ~99% confidence."""
    generator = torch.Generator().manual_seed(seed)
    examples, logits = [], {spec.name: torch.zeros(n, spec.width) for spec in HEAD_SPECS}
    for i in range(n):
        score = int(torch.randint(0, 101, (1,), generator=generator))
        verdict = schema.verdict_for_score(score)
        examples.append(Example(f"s{seed}-{i}", "T", "A", "la la", schema.Label(score, verdict)))
        guess = verdict if float(torch.rand(1, generator=generator)) < 0.7 else \
            schema.VERDICTS[int(torch.randint(0, 4, (1,), generator=generator))]
        logits["verdict"][i, schema.VERDICTS.index(guess)] = 1.5 * overconfidence
        raw = min(max(score + 6.0 * float(torch.randn(1, generator=generator)), 0.5), 99.5)
        logits["score"][i, 0] = math.log(raw / (100 - raw))
    return logits, examples


def test_fit_recovers_the_score_noise_and_softens_the_verdict_head():
    logits, examples = songs_and_logits(600, 0)
    fitted = decoding.fit(logits, examples)
    assert 4.5 < fitted["score_sigma"] < 7.5 and fitted["songs"] == 600
    assert fitted["verdict_temperature"] > 1.0


def test_the_study_scores_each_fold_with_a_decoding_fitted_on_the_others():
    folds = [songs_and_logits(200, seed) for seed in range(3)]
    result = decoding.study(folds)
    assert [row["fold"] for row in result["per_fold"]] == [0, 1, 2]
    for row in result["per_fold"]:
        assert row["fitted"]["songs"] == 400  # the two other folds
    mean = result["mean"]
    # the joint decoding reads the (good) score head: more accurate, calibrated, never pinned
    assert mean["joint"]["verdict_accuracy"] > mean["argmax"]["verdict_accuracy"]
    assert mean["joint"]["ece"] < mean["argmax"]["ece"]
    assert mean["argmax"]["pinned"] > 0.1 and mean["joint"]["pinned"] < 0.02
    assert result["decoding"]["songs"] == 600
    # the conditional decoding: the head's verdicts (a temperature keeps the argmax); a score is
    # on the edge only where the head's band is far from the score head (a guessed verdict here)
    assert mean["conditional"]["verdict_accuracy"] == mean["argmax"]["verdict_accuracy"]
    assert mean["conditional"]["pinned"] < mean["argmax"]["pinned"] / 3
    assert result["conditional"]["score_mode"] == "conditional"
    assert result["conditional"]["score_sigma"] == result["decoding"]["score_sigma"]
    assert any("| joint |" in line for line in decoding.markdown(result))


@pytest.mark.parametrize("values, message", [
    ({"score_sigma": 0.0}, "score_sigma must be"),
    ({"verdict_temperature": "hot"}, "verdict_temperature must be"),
    ({"songs": 3}, "sets neither"),
    ({"score_sigma": 6.0, "score_mode": "median"}, "score_mode must be"),
])
def test_export_refuses_a_bad_decoding_file(tmp_path, values, message):
    import json

    from training.quantize.export import ExportError, read_decoding

    path = tmp_path / "decoding.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ExportError, match=message):
        read_decoding(str(path))


def test_export_reads_a_conditional_decoding(tmp_path):
    import json

    from training.quantize.card import decoding_line
    from training.quantize.export import read_decoding

    path = tmp_path / "decoding-conditional.json"
    path.write_text(json.dumps({"verdict_temperature": 1.5, "score_sigma": 9.0,
                                "score_mode": "conditional", "songs": 830}))
    decoding = read_decoding(str(path))
    assert decoding == {"verdict_temperature": 1.5, "score_sigma": 9.0,
                        "score_mode": "conditional", "fitted": {"songs": 830}}
    assert "inside that verdict's band" in decoding_line(decoding)
    path.write_text(json.dumps({"score_sigma": 9.0}))  # no mode: the joint decoding, as before
    assert "score_mode" not in read_decoding(str(path))
