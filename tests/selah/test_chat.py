"""Chat rendering through the models' own templates (Qwen3 without thinking, gpt-oss harmony)."""

import json
from datetime import date

import pytest

from selah.chat import PINNED_DATE, SYSTEM_PROMPT, build_messages, pin_template_date, render_chat
from tests.training.paths import SONGS
from training.data.normalize import NormStats
from training.data.readers import parse_record, read_examples


@pytest.fixture(scope="module")
def example():
    examples, _ = read_examples(SONGS)
    return examples[0]


def test_messages_carry_the_upstream_user_format_and_the_label(example):
    system, user, assistant = build_messages(example)
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["content"].startswith("Analyze this song.\nTitle: Morning Mercy\nArtist: ")
    assert user["content"].endswith("\n\nLyrics:\n" + example.lyrics)
    assert json.loads(assistant["content"]) == example.label.to_dict()


def test_rendered_messages_read_back_as_a_chat_record(example):
    record = {"messages": build_messages(example)}
    song, label, _, fmt = parse_record(record, "auto", NormStats())
    assert fmt == "chat" and label == example.label
    assert (song["title"], song["lyrics"]) == (example.title, example.lyrics)


def test_qwen3_renders_without_thinking(example, make_tokenizer):
    tokenizer = make_tokenizer("qwen3")
    full = render_chat(example, tokenizer, "qwen3")
    prompt = render_chat(example, tokenizer, "qwen3", with_answer=False)
    assert full.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n")
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert full.startswith(prompt)  # the training text continues the inference prompt
    answer = full[len(prompt):]
    assert answer.endswith("<|im_end|>\n")
    assert json.loads(answer[:-len("<|im_end|>\n")]) == example.label.to_dict()


def test_gptoss_renders_harmony_with_a_pinned_date(example, make_tokenizer):
    tokenizer = make_tokenizer("gptoss")
    full = render_chat(example, tokenizer, "gptoss")
    prompt = render_chat(example, tokenizer, "gptoss", with_answer=False)
    assert full.startswith("<|start|>system<|message|>")
    assert f"Current date: {PINNED_DATE.isoformat()}\n" in full
    assert date.today().isoformat() not in full or date.today() == PINNED_DATE
    assert "Reasoning: low" in full
    assert f"<|start|>developer<|message|># Instructions\n\n{SYSTEM_PROMPT}" in full
    assert prompt.endswith("<|start|>assistant")
    assert full.startswith(prompt)
    answer = full[len(prompt):]
    assert answer.startswith("<|channel|>final<|message|>") and answer.endswith("<|return|>")
    assert render_chat(example, tokenizer, "gptoss") == full  # stable from call to call


def test_pin_template_date_handles_any_format():
    template = "{{ strftime_now('%d %B %Y') }}|{{- strftime_now(\"%Y-%m-%d\") }}"
    pinned = pin_template_date(template, date(2025, 8, 5))
    assert pinned == '{{ "05 August 2025" }}|{{- "2025-08-05" }}'


def test_bad_family_or_missing_template_fails_clearly(example, make_tokenizer):
    with pytest.raises(ValueError, match="unknown chat family 'llama'"):
        render_chat(example, make_tokenizer("qwen3"), "llama")

    class Bare:
        chat_template = None

    with pytest.raises(ValueError, match="no chat template"):
        render_chat(example, Bare(), "qwen3")
