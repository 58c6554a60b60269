"""selah.inference: the one decoding convention, and one path whatever the batch."""

import pytest
import torch

from selah import schema
from selah.checkpoint import load_checkpoint
from selah.inference import decode_logits, predict_songs
from selah.schema import score_band
from selah.student import HEAD_SPECS, load_student


@pytest.mark.parametrize("verdict, band", [("freely_listen", (85, 100)),
                                           ("context_required", (60, 84)),
                                           ("caution_limit", (40, 59)),
                                           ("avoid_formation", (0, 39))])
def test_score_bands(verdict, band):
    assert score_band(verdict) == band
    assert schema.verdict_for_score(band[0]) == verdict == schema.verdict_for_score(band[1])


def test_decoding_clamps_the_score_into_the_verdict_band():
    logits = {spec.name: torch.zeros(2, spec.width) for spec in HEAD_SPECS}
    logits["verdict"][0, 0] = 5.0  # freely_listen
    logits["verdict"][1, 3] = 5.0  # avoid_formation
    logits["score"][:, 0] = 0.0  # sigmoid 0.5 -> raw 50
    first, second = decode_logits(logits, HEAD_SPECS)
    assert first["verdict"] == "freely_listen" and first["score"] == 85.0
    assert second["verdict"] == "avoid_formation" and second["score"] == 39.0
    assert first["raw_score"] == pytest.approx(50.0)
    assert sum(first["verdict_probs"].values()) == pytest.approx(1.0)
    assert set(first["heads"]["concern_severity"]) == set(schema.CONCERN_CATEGORIES)
    assert set(first["heads"]["themes"]) == set(schema.THEME_NAMES)


def test_an_int8_song_gets_the_same_prediction_alone_or_in_any_batch(int8_checkpoint):
    """Fixed window shapes, per-token activation scales and heads applied song by song: a
    song's numbers do not depend on what shares its forward pass (the service's guarantee)."""
    model, featurizer, _, _ = load_checkpoint(int8_checkpoint)
    line = "Grace like rain falls down on me\n"  # songs of one, ten and nineteen lines
    songs = [{"title": f"Song {i}", "artist": "Test Choir", "lyrics": line * (1 + 9 * (i % 3))}
             for i in range(5)]
    together = predict_songs(model, featurizer, songs, batch_size=5)
    alone = [predict_songs(model, featurizer, [song], batch_size=1)[0] for song in songs]
    assert together == alone
    assert predict_songs(model, featurizer, []) == []


def test_predicting_puts_a_training_model_back_in_training_mode(tiny_student):
    model, featurizer, _ = load_student(tiny_student)
    model.train()
    song = {"title": "Mode", "artist": "Test", "lyrics": "Still my soul be still\nand wait"}
    first = predict_songs(model, featurizer, [song])
    assert model.training
    assert predict_songs(model, featurizer, [song]) == first  # dropout was off while predicting
