"""Chat rendering of a labelled song for a causal LM, through the model's own chat template.

`build_messages` gives the system/user/assistant messages (the user message is the upstream chat
format: "Title: T\\nArtist: A\\n\\nLyrics:\\n..."; the assistant message is the normalised label as
JSON). `render_chat` renders them with `tokenizer.apply_chat_template`:

- Qwen3 (`family="qwen3"`): `enable_thinking=False`, so a generation prompt ends in an empty
  `<think>\\n\\n</think>` block and no reasoning is trained or generated.
- gpt-oss (`family="gptoss"`): the harmony format from the gpt-oss tokenizer's template. Its
  system message carries "Current date: ..." from `strftime_now`; we pin it to PINNED_DATE by
  rewriting those calls in the template before rendering, so prompts do not change from day to
  day (current transformers pass only plain data to templates, so a callable kwarg cannot
  override `strftime_now`). `openai-harmony` is not used: it downloads its vocabulary at run time.
"""

import json
import re
from datetime import date
from typing import Any

from selah.deps import require

FAMILIES = ("qwen3", "gptoss")
PINNED_DATE = date(2025, 8, 5)  # the gpt-oss release date
GPTOSS_REASONING_EFFORT = "low"
SYSTEM_PROMPT = (
    "You analyse song lyrics for Christian listeners with the Christian Framework v3.1. Answer "
    "with one JSON object: verdict, score (0-100), formation_risk, narrative_voice, "
    "lament_filter_applied, themes, concerns, scripture_references, analysis."
)
_STRFTIME_RE = re.compile(r"""strftime_now\(\s*(["'])(?P<fmt>.*?)\1\s*\)""")


def user_message(title: str, artist: str, lyrics: str) -> str:
    """The user turn in the upstream chat format."""
    return f"Analyze this song.\nTitle: {title}\nArtist: {artist}\n\nLyrics:\n{lyrics}"


def build_messages(example: Any, system_prompt: str = SYSTEM_PROMPT,
                   with_answer: bool = True) -> list[dict]:
    """System, user and (with `with_answer`) assistant messages for an `Example`."""
    messages = [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": user_message(example.title, example.artist, example.lyrics)},
    ]
    if with_answer:
        target = example.label.to_dict()
        target.update(getattr(example, "label_signals", None) or {})
        messages.append({"role": "assistant",
                         "content": json.dumps(target, ensure_ascii=False)})
    return messages


def pin_template_date(template: str, when: date = PINNED_DATE) -> str:
    """`template` with every `strftime_now("FMT")` replaced by the pinned date in that format."""
    return _STRFTIME_RE.sub(lambda m: json.dumps(when.strftime(m.group("fmt"))), template)


def render_chat(example: Any, tokenizer: Any, family: str, with_answer: bool = True,
                system_prompt: str = SYSTEM_PROMPT) -> str:
    """The example as one prompt string in `family`'s chat format.

    With `with_answer`, the full conversation for training (the assistant turn is the target);
    without, the prompt ending in the generation cue, for inference.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown chat family {family!r}; valid: {', '.join(FAMILIES)}")
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise ValueError("the tokenizer has no chat template; load the model's own tokenizer")
    messages = build_messages(example, system_prompt, with_answer)
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": not with_answer}
    if family == "qwen3":
        kwargs["enable_thinking"] = False
    else:
        kwargs["chat_template"] = pin_template_date(template)
        kwargs["reasoning_effort"] = GPTOSS_REASONING_EFFORT
    return tokenizer.apply_chat_template(messages, **kwargs)


def load_tokenizer(name_or_path: str, gguf_file: str | None = None, **kwargs: Any) -> Any:
    """A tokenizer from a local folder or hub id (optionally a GGUF file inside it)."""
    transformers = require("transformers", "chat rendering")
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    return transformers.AutoTokenizer.from_pretrained(name_or_path, **kwargs)
