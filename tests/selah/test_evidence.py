"""Evidence lines (`selah.evidence`): the decomposition they rest on, checked against a direct
forward pass of a tiny random student, their batch independence, and how lines are chosen."""

import pytest
import torch

from selah import evidence, schema
from selah.inference import predict_songs
from selah.student import load_student

SONG = {"title": "Two Roads", "artist": "Test Band",
        "lyrics": "I walked the long road home\n\nThe river sang of mercy\n"
                  "I walked the long road home\nand the night was full of stars" * 3}
OTHER = {"title": "Short Hymn", "artist": "Test Choir", "lyrics": "Grace upon grace\nAmen"}


@pytest.fixture(scope="module")
def student(tiny_student):
    """The tiny random float student (2 layers, windows of 64 tokens: this song needs several)."""
    model, featurizer, _ = load_student(tiny_student)
    return model, featurizer


def test_token_lines_skip_title_artist_and_special_tokens(student):
    _, featurizer = student
    song = {"title": "Grace", "artist": "Choir", "lyrics": "first line\n\nthird line here"}
    text = featurizer.texts([song])[0]
    encoded = featurizer.tokenizer(text, return_offsets_mapping=True)
    lines = evidence.token_lines(encoded["offset_mapping"], evidence.line_starts(song))
    words = featurizer.tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    named = {word: line for word, line in zip(words, lines)}
    assert named["grace"] == named["choir"] == named["[CLS]"] == named["[SEP]"] == 0
    assert named["first"] == 1 and named["third"] == named["here"] == 3


def test_a_line_reads_as_its_strongest_token_logit(student):
    """The readings equal the max over each line's tokens of the head applied to the token
    states of an independent forward pass, and the song logit is the mean of those token
    logits (the decomposition the module docstring states)."""
    model, featurizer = student
    prediction, = predict_songs(model, featurizer, [SONG], evidence=True)
    readings = prediction["line_logits"]
    text = featurizer.texts([SONG])[0]
    encoded = featurizer.tokenizer(text, truncation=True, max_length=featurizer.max_length,
                                   stride=featurizer.stride, return_overflowing_tokens=True,
                                   return_offsets_mapping=True)
    assert len(encoded["input_ids"]) > 1  # several windows
    expected: dict[int, torch.Tensor] = {}
    total, count = 0, 0
    with torch.no_grad():
        for ids, offsets in zip(encoded["input_ids"], encoded["offset_mapping"]):
            states = model.backbone(input_ids=torch.tensor([ids])).last_hidden_state[0]
            logits = model.heads["concerns"](states)
            total, count = total + logits.sum(0), count + len(ids)
            for logit, line in zip(logits, evidence.token_lines(offsets,
                                                                evidence.line_starts(SONG))):
                if line:
                    expected[line] = torch.maximum(expected.get(line, logit), logit)
    assert readings["lines"] == sorted(expected)
    torch.testing.assert_close(torch.tensor(readings["concerns"]),
                               torch.stack([expected[n] for n in readings["lines"]]),
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(torch.tensor(prediction["logits"]["concerns"]), total / count,
                               rtol=1e-4, atol=1e-4)


def test_evidence_is_the_same_alone_or_in_any_batch(student):
    model, featurizer = student
    alone, = predict_songs(model, featurizer, [SONG], evidence=True)
    batch = predict_songs(model, featurizer, [OTHER, SONG, OTHER, SONG], batch_size=3,
                          evidence=True)
    for other in (batch[1], batch[3]):
        assert other["line_logits"] == alone["line_logits"]  # every float, exactly
    plain, = predict_songs(model, featurizer, [SONG])
    assert "line_logits" not in plain
    assert plain["verdict_probs"] == alone["verdict_probs"] and plain["score"] == alone["score"]


def test_a_decoder_student_gives_no_evidence(student):
    model, featurizer = student
    model.pooling = "last_token"
    try:
        prediction, = predict_songs(model, featurizer, [SONG], evidence=True)
    finally:
        model.pooling = "mean"
    assert prediction["line_logits"] is None
    assert evidence.evidence_for(None, "concerns", 0, 0.0, SONG["lyrics"]) == []


def readings(values: list[float], lines: list[int]) -> dict:
    """Line readings (as `predict_songs` gives them) of one column of the concerns head."""
    width = len(schema.CONCERN_CATEGORIES)
    table = [[-5.0] * width for _ in lines]
    for row, value in zip(table, values):
        row[2] = value
    return {"lines": lines, "concerns": table}


LYRICS = "one\ntwo\nchorus line\nfour\n\nchorus line\nseven"


@pytest.mark.parametrize("values, song_logit, expected", [
    # above the song's logit, strongest first; a repeated line once, with both numbers
    ([0.5, 3.0, 2.0, -1.0, 2.0, 0.1], 0.4, [([2], 1.0), ([3, 6], 0.368), ([1], 0.082)]),
    # none above the song's logit: the strongest line alone
    ([-3.0, -2.0, -4.0, -1.0, -4.0, -2.5], 0.0, [([4], 1.0)]),
    # at most MAX_LINES texts
    ([4.0, 3.0, 2.0, 5.0, 2.0, 6.0], 0.0, [([7], 1.0), ([4], 0.368), ([1], 0.135)]),
])
def test_lines_above_the_songs_logit_are_named(values, song_logit, expected):
    lines = [1, 2, 3, 4, 6, 7]  # line 5 is blank: never named
    found = evidence.evidence_for(readings(values, lines), "concerns", 2, song_logit, LYRICS)
    assert [(item["lines"], item["strength"]) for item in found] == expected
    texts = LYRICS.splitlines()
    assert all(item["text"] == texts[item["lines"][0] - 1] for item in found)


@pytest.mark.parametrize("numbers, phrase", [
    ([4], "line 4"), ([18, 12], "lines 12 and 18"), ([9, 3, 7], "lines 3, 7 and 9"), ([], ""),
])
def test_lines_are_named_as_a_reader_says_them(numbers, phrase):
    assert evidence.lines_phrase([{"lines": numbers}]) == phrase
