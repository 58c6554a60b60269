"""The teacher's prompt and answer ids: answer-only loss masking, windows, end of turn."""

import json

import pytest

from tests.training.paths import QWEN3_TEMPLATE
from training.teacher import prompts as fmt
from training.teacher.model import load_causal_lm


@pytest.fixture(scope="module")
def tokenizer(tiny_teacher):
    return load_causal_lm(str(tiny_teacher))[1]


def test_answer_segments_join_into_the_labels_json(songs):
    label = songs[0].label
    parsed = json.loads("".join(fmt.answer_segments(label)))
    assert parsed["verdict"] == label.verdict and parsed["score"] == label.score
    assert parsed["formation_risk"] == label.formation_risk
    assert parsed["lament_filter_applied"] == label.lament_filter_applied
    assert parsed["themes"] == list(label.themes)
    assert parsed["concerns"] == [c for c, _ in label.concerns]
    assert list(parsed)[:4] == ["verdict", "formation_risk", "narrative_voice",
                                "lament_filter_applied"]  # categorical fields first


def test_loss_is_masked_to_the_answer_tokens(tokenizer, songs):
    encoder = fmt.Encoder(tokenizer, max_length=448, answer_reserve=96)
    for song in songs:
        (example,) = fmt.training_examples(encoder, song)
        answer = encoder.answer(fmt.answer_segments(song.label))
        start = next(i for i, t in enumerate(example.labels) if t != fmt.IGNORE)
        assert all(t == fmt.IGNORE for t in example.labels[:start])
        supervised = len(example.labels) - start
        assert example.labels[start:] == example.input_ids[start:] == answer[:supervised]
        assert len(example.input_ids) <= 448
        text = tokenizer.decode(example.input_ids[start:])
        assert text.startswith('{"verdict": "' + song.label.verdict)
        assert text.endswith("<|im_end|>\n") or len(example.input_ids) == 448
        prompt = tokenizer.decode(example.input_ids[:start])
        assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")  # thinking off


def test_long_lyrics_are_cut_to_the_first_window_or_chunked(tokenizer, songs):
    song = songs[0]
    long_lyrics = "\n".join([song.lyrics] * 40)
    lyric_ids = tokenizer(long_lyrics, add_special_tokens=False)["input_ids"]
    head = fmt.Encoder(tokenizer, max_length=448, answer_reserve=96)
    (prompt,) = head.prompts(song.title, song.artist, long_lyrics)
    assert len(prompt) == 448 - 96
    chunks = fmt.Encoder(tokenizer, max_length=448, answer_reserve=96, window="chunks", stride=16)
    windows = chunks.prompts(song.title, song.artist, long_lyrics)
    assert len(windows) > 1 and all(len(w) <= 448 - 96 for w in windows)
    fixed = len(chunks.prompts(song.title, song.artist, "")[0])  # the prompt around the lyrics
    covered = sum(len(w) - fixed for w in windows)
    assert covered >= len(lyric_ids)  # every lyric token is in some window


def test_a_prompt_that_cannot_fit_is_refused(tokenizer, songs):
    encoder = fmt.Encoder(tokenizer, max_length=128, answer_reserve=96)
    with pytest.raises(ValueError, match="raise max_length"):
        encoder.prompts(songs[0].title, songs[0].artist, songs[0].lyrics)


def test_real_qwen3_template_ends_the_turn_with_im_end(tokenizer):
    tokenizer.chat_template = QWEN3_TEMPLATE.read_text(encoding="utf-8")
    encoder = fmt.Encoder(tokenizer)
    assert tokenizer.decode(encoder.end_ids) == "<|im_end|>\n"
    (prompt,) = encoder.prompts("T", "A", "la la")
    assert tokenizer.decode(prompt).endswith("<think>\n\n</think>\n\n")
