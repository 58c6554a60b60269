"""selah.inference: the one decoding convention, and one path whatever the batch."""

import pytest
import torch

from selah import schema
from selah.checkpoint import load_checkpoint
from selah.inference import (
    decode_logits,
    featurize,
    featurize_buckets,
    forward_songs,
    predict_songs,
    window_buckets,
)
from selah.schema import score_band
from selah.student import HEAD_SPECS, load_student
from tests.selah.cpu import needs_onednn_bf16


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


def test_joint_decoding_keeps_the_score_inside_the_band_it_chose():
    logits = {spec.name: torch.zeros(3, spec.width) for spec in HEAD_SPECS}
    logits["verdict"][0] = torch.tensor([2.0, 1.9, 0.0, 0.0])  # head torn, score says context
    logits["score"][0, 0] = torch.logit(torch.tensor(0.70))  # raw 70
    logits["verdict"][1, 0] = 8.0  # head sure of freely_listen, score just under its band
    logits["score"][1, 0] = torch.logit(torch.tensor(0.83))
    logits["verdict"][2, 3] = 8.0
    logits["score"][2, 0] = torch.logit(torch.tensor(0.10))
    plain = decode_logits(logits, HEAD_SPECS)
    joint = decode_logits(logits, HEAD_SPECS, {"score_sigma": 8.0})
    assert plain[0]["verdict"] == "freely_listen" and plain[0]["score"] == 85.0  # pinned
    assert joint[0]["verdict"] == "context_required" and 60 < joint[0]["score"] < 84
    assert joint[1]["verdict"] == "freely_listen" and 85 < joint[1]["score"] < 100
    assert joint[2]["verdict"] == "avoid_formation" and joint[2]["score"] < 39
    for prediction in joint:
        assert sum(prediction["verdict_probs"].values()) == pytest.approx(1.0)
        assert prediction["confidence"] == max(prediction["verdict_probs"].values())
        lowest, highest = score_band(prediction["verdict"])
        assert lowest <= prediction["score"] <= highest
    # the head's own distribution stays under heads
    assert joint[0]["heads"]["verdict"] == plain[0]["heads"]["verdict"]


def test_conditional_decoding_keeps_the_heads_verdict_and_never_pins_the_score():
    logits = {spec.name: torch.zeros(3, spec.width) for spec in HEAD_SPECS}
    logits["verdict"][0] = torch.tensor([2.0, 1.9, 0.0, 0.0])  # freely_listen, score says 70
    logits["score"][0, 0] = torch.logit(torch.tensor(0.70))
    logits["verdict"][1] = torch.tensor([0.0, 0.0, 0.0, 3.0])  # avoid, score says 50
    logits["score"][1, 0] = torch.logit(torch.tensor(0.50))
    logits["verdict"][2] = torch.tensor([0.0, 3.0, 0.0, 0.0])  # context, score inside at 72
    logits["score"][2, 0] = torch.logit(torch.tensor(0.72))
    plain = decode_logits(logits, HEAD_SPECS)
    conditional = decode_logits(logits, HEAD_SPECS, {"score_sigma": 8.0,
                                                     "score_mode": "conditional"})
    assert [p["score"] for p in plain[:2]] == [85.0, 39.0]  # the clamp pins both
    assert [p["verdict"] for p in conditional] == [p["verdict"] for p in plain]
    assert [p["verdict_probs"] for p in conditional] == [p["verdict_probs"] for p in plain]
    assert 85 < conditional[0]["score"] < 90 and 30 < conditional[1]["score"] < 39
    assert abs(conditional[2]["score"] - 72) < 1  # well inside its band: about the raw score
    for prediction in conditional:
        lowest, highest = score_band(prediction["verdict"])
        assert lowest < prediction["score"] < highest


def test_a_verdict_temperature_softens_the_confidence_only():
    logits = {spec.name: torch.zeros(1, spec.width) for spec in HEAD_SPECS}
    logits["verdict"][0] = torch.tensor([4.0, 1.0, 0.0, -1.0])
    plain, = decode_logits(logits, HEAD_SPECS)
    soft, = decode_logits(logits, HEAD_SPECS, {"verdict_temperature": 2.0})
    assert soft["verdict"] == plain["verdict"] and soft["score"] == plain["score"]
    assert soft["confidence"] == pytest.approx(float((logits["verdict"][0] / 2).softmax(-1)[0]))
    assert soft["confidence"] < plain["confidence"]
    assert decode_logits(logits, HEAD_SPECS, {"theme_threshold": 0.5}) == [plain]


def test_an_int8_song_gets_the_same_prediction_alone_or_in_any_batch(int8_checkpoint):
    """Bucketed window shapes, per-token activation scales and heads applied song by song: a
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


@pytest.fixture(scope="module")
def shipped():
    """The embedded checkpoint (MiniLM, 256-token windows): the one with three buckets."""
    from selah.analyzers.gptoss import EMBEDDED_CHECKPOINT

    model, featurizer, _, _ = load_checkpoint(EMBEDDED_CHECKPOINT)
    return model, featurizer


def _songs(line: str, lines: tuple[int, ...]) -> list[dict]:
    return [{"title": f"Song {n}", "artist": "Test Choir", "lyrics": line * n} for n in lines]


def test_windows_are_padded_to_the_smallest_bucket_that_holds_them(shipped):
    _, featurizer = shipped
    assert window_buckets(256) == (64, 128, 256) and window_buckets(64) == (64,)
    assert window_buckets(100) == (64, 100)
    songs = _songs("Grace like rain falls down on me\n", (1, 12, 25, 80))
    batch = featurize_buckets(featurizer, songs)
    lengths = {}
    for positions, input_ids, mask in batch["buckets"]:
        real = mask.sum(1)
        assert input_ids.shape == mask.shape and len(positions) == len(input_ids)
        smaller = [b for b in window_buckets(256) if b < input_ids.size(1)]
        assert (real <= input_ids.size(1)).all() and (real > max(smaller, default=0)).all()
        for position, length in zip(positions.tolist(), real.tolist()):
            lengths[position] = length
    assert sorted(lengths) == list(range(batch["n_windows"]))  # every window, once
    padded = featurize(featurizer, songs)
    assert lengths == dict(enumerate(padded["attention_mask"].sum(1).tolist()))
    assert torch.equal(batch["song_index"], padded["song_index"])
    assert {ids.size(1) for _, ids, _ in batch["buckets"]} == {64, 128, 256}


def test_pass_rows_are_every_token_count_a_pass_can_have(shipped, monkeypatch):
    from selah.inference import MAX_PASS_TOKENS, encode_buckets, pass_rows

    assert pass_rows(100) == tuple(sorted({64 * w for w in range(1, MAX_PASS_TOKENS // 64 + 1)}
                                          | {100 * w for w in range(1, MAX_PASS_TOKENS // 100
                                                                    + 1)}))
    model, featurizer = shipped
    seen = []
    original = model.window_terms
    monkeypatch.setattr(model, "window_terms",
                        lambda ids, mask: seen.append(ids.numel()) or original(ids, mask))
    songs = _songs("Holy, holy, holy is the Lord of hosts\n", (1, 9, 30, 300))
    with torch.inference_mode():
        encode_buckets(model, featurize_buckets(featurizer, songs), "cpu")
    assert seen and set(seen) <= set(pass_rows(featurizer.max_length))


@pytest.mark.parametrize("runtime,calibrated", [
    ("int8", False), pytest.param("bf16", False, marks=needs_onednn_bf16),
    pytest.param("bf16", True, marks=needs_onednn_bf16)])
def test_a_shipped_song_gets_the_same_numbers_alone_or_in_any_batch(shipped, runtime,
                                                                    calibrated, monkeypatch):
    """Bucketed windows, per-token activation scales (int8) or GEMMs padded to a row count from
    which a row's result does not depend on their number (bf16: the conservative floor, or the
    floors calibrated for the passes' row counts, as the analyzer loads it), per-window pooling
    terms added in window order and heads song by song: bit for bit the same alone, in any
    batch, in any order. (`float32` is the reference, not a serving runtime: its GEMMs round a
    row differently with the row count.)"""
    import copy

    from selah.inference import pass_rows
    from selah.int8 import apply_runtime

    model, featurizer = shipped
    rows = pass_rows(featurizer.max_length) if calibrated else ()
    model = apply_runtime(copy.deepcopy(model), runtime, rows)
    songs = _songs("When the morning breaks I lift my eyes to You\n", (1, 6, 14, 40, 3))
    together = forward_songs(model, featurizer, songs, batch_size=5)
    reordered = forward_songs(model, featurizer, songs[::-1] + songs, batch_size=3)
    for index, song in enumerate(songs):
        alone = forward_songs(model, featurizer, [song], batch_size=1)
        for name, value in alone.items():
            assert torch.equal(value[0], together[name][index]), (runtime, name, index)
            assert torch.equal(value[0], reordered[name][len(songs) - 1 - index])
            assert torch.equal(value[0], reordered[name][len(songs) + index])
    monkeypatch.setattr("selah.inference.MAX_PASS_TOKENS", 300)  # a pass of one window
    pieces = forward_songs(model, featurizer, songs, batch_size=5)
    assert all(torch.equal(pieces[name], together[name]) for name in together)


def test_buckets_change_no_verdict_of_the_shipped_student(shipped):
    """Padding a window to its bucket instead of the full 256 tokens moves its numbers by
    float rounding only."""
    model, featurizer = shipped
    songs = _songs("Your love never fails, it never gives up\n", (1, 5, 9, 20, 33))
    bucketed = forward_songs(model, featurizer, songs)
    with torch.inference_mode():
        batch = featurize(featurizer, songs)
        full = model(batch["input_ids"], batch["attention_mask"], batch["song_index"],
                     batch["n_songs"])
    assert torch.equal(bucketed["verdict"].argmax(1), full["verdict"].argmax(1))
    assert torch.allclose(bucketed["score"], full["score"], atol=0.05)
