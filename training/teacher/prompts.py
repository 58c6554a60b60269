"""The teacher's prompt and answer as token ids, built the same way for training and for labelling.

The teacher answers in a compact JSON whose categorical fields come first, so the prefix that is
teacher-forced before each field is short:

    {"verdict": "V", "formation_risk": "F", "narrative_voice": "N", "lament_filter_applied": B,
     "score": S, "themes": ["T1", ...], "concerns": ["C1", ...]}

The answer is tokenised segment by segment (each literal piece of JSON, each value, each list item
on its own), so the ids a value gets during fine-tuning are exactly the ids `training.labels.soft`
scores when it asks the teacher for that value's probability. A field the gold label lacks is
written as "unknown" in training; labelling scores only the schema's values.

Prompts: the model's chat template renders the system and user turns around a placeholder; the
lyrics' own ids are spliced in, cut to the lyric budget `max_length - overhead - answer_reserve`
(`head`: the first window only; `chunks`: every window, `stride` tokens of overlap, each a
training example of its own with the song's answer, averaged when labelling).
"""

import json
from dataclasses import dataclass
from typing import Any, Sequence

from selah import schema
from selah.chat import SYSTEM_PROMPT, user_message

IGNORE = -100
MISSING = "unknown"
WINDOWS = ("head", "chunks")
_LYRICS_MARK = "\u2063LYRICS\u2063"  # invisible separator: never in real lyrics
TEACHER_PROMPT = (
    SYSTEM_PROMPT.split(" Answer with")[0] + " Answer with one JSON object: verdict, "
    "formation_risk, narrative_voice, lament_filter_applied, score (0-100), themes, concerns."
)

# (field, JSON key, allowed values as written in the answer, the schema labels they stand for)
CATEGORICAL = (
    ("verdict", "verdict", schema.VERDICTS, schema.VERDICTS),
    ("formation_risk", "formation_risk", schema.FORMATION_RISKS, schema.FORMATION_RISKS),
    ("narrative_voice", "narrative_voice", schema.NARRATIVE_VOICES, schema.NARRATIVE_VOICES),
    ("lament_filter", "lament_filter_applied", ("false", "true"), ("not_applied", "applied")),
)
LISTS = (("themes", schema.THEME_NAMES), ("concerns", schema.CONCERN_CATEGORIES))


def encodable(text: str) -> str:
    """`text` with lone surrogates (which no tokenizer encodes) as U+FFFD."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _quoted(key: str) -> bool:
    return key != "lament_filter_applied"


def literal_after(field: str) -> str:
    """The JSON text that follows a categorical field's value (up to the next value)."""
    keys = [key for _, key, _, _ in CATEGORICAL]
    index = [name for name, _, _, _ in CATEGORICAL].index(field)
    close = '"' if _quoted(keys[index]) else ""
    if index + 1 < len(keys):
        nxt = keys[index + 1]
        return f'{close}, "{nxt}": ' + ('"' if _quoted(nxt) else "")
    return f'{close}, "score": '


OPEN = '{"verdict": "'
AFTER_SCORE = ', "themes": ['
BETWEEN_ITEMS = ", "
AFTER_THEMES = '], "concerns": ['
CLOSE = "]}"


def item(name: str) -> str:
    """A list item as written in the answer."""
    return json.dumps(name, ensure_ascii=False)


def answer_segments(label: schema.Label) -> list[str]:
    """The gold answer of a label as its segments, in order (their concatenation is the JSON)."""
    values = {
        "verdict": label.verdict,
        "formation_risk": label.formation_risk or MISSING,
        "narrative_voice": label.narrative_voice or MISSING,
        "lament_filter": (MISSING if label.lament_filter_applied is None
                          else str(label.lament_filter_applied).lower()),
    }
    segments = [OPEN]
    for name, _, _, _ in CATEGORICAL:
        segments += [values[name], literal_after(name)]
    segments += [str(int(round(label.score))), AFTER_SCORE]
    concerns = list(dict.fromkeys(category for category, _ in label.concerns))
    for names, after in ((list(label.themes), AFTER_THEMES), (concerns, CLOSE)):
        for i, name in enumerate(names):
            segments += ([BETWEEN_ITEMS] if i else []) + [item(name)]
        segments.append(after)
    return segments


class Encoder:
    """Token ids of prompts and answer segments for one tokenizer (literal segments cached)."""

    def __init__(self, tokenizer: Any, max_length: int = 512, answer_reserve: int = 128,
                 window: str = "head", stride: int = 32, system_prompt: str = TEACHER_PROMPT):
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}, got {window!r}")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the teacher's tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.answer_reserve = answer_reserve
        self.window = window
        self.stride = stride
        self.system_prompt = system_prompt
        self._cache: dict[str, list[int]] = {}
        self.end_ids = self._end_of_turn()

    def ids(self, text: str) -> list[int]:
        """Ids of a text piece, no special tokens added (memoised: literals repeat)."""
        if text not in self._cache:
            self._cache[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._cache[text]

    def _render(self, lyrics: str, title: str, artist: str, answer: str | None = None) -> str:
        messages = [{"role": "system", "content": self.system_prompt},
                    {"role": "user", "content": user_message(title, artist, lyrics)}]
        if answer is not None:
            messages.append({"role": "assistant", "content": answer})
        kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": answer is None}
        if "enable_thinking" in (self.tokenizer.chat_template or ""):
            kwargs["enable_thinking"] = False  # Qwen3: no reasoning block
        return self.tokenizer.apply_chat_template(messages, **kwargs)

    def _end_of_turn(self) -> list[int]:
        """Ids that close the assistant turn in this template (else the EOS token)."""
        probe = "{}"
        prompt = self._render("x", "t", "a")
        full = self._render("x", "t", "a", answer=probe)
        if full.startswith(prompt + probe) and full[len(prompt) + len(probe):].strip():
            return self.ids(full[len(prompt) + len(probe):])
        return [self.tokenizer.eos_token_id]

    def prompts(self, title: str, artist: str, lyrics: str) -> list[list[int]]:
        """Prompt ids ending in the generation cue: one (`head`) or one per window (`chunks`)."""
        title, artist, lyrics = (encodable(t) for t in (title, artist, lyrics))
        before, after = self._render(_LYRICS_MARK, title, artist).split(_LYRICS_MARK)
        head, tail = self.ids(before), self.ids(after)
        budget = self.max_length - len(head) - len(tail) - self.answer_reserve
        if budget < 16:
            raise ValueError(f"max_length {self.max_length} leaves {budget} lyric tokens after "
                             f"the prompt and the answer reserve; raise max_length")
        lyric = self.tokenizer(lyrics, add_special_tokens=False)["input_ids"]
        if self.window == "head" or len(lyric) <= budget:
            return [head + lyric[:budget] + tail]
        step = budget - min(self.stride, budget // 2)
        starts = range(0, max(len(lyric) - self.stride, 1), step)
        return [head + lyric[s:s + budget] + tail for s in starts]

    def answer(self, segments: Sequence[str]) -> list[int]:
        """Ids of an answer (its segments) followed by the end of the turn."""
        return [i for segment in segments for i in self.ids(segment)] + self.end_ids


@dataclass
class TrainingExample:
    """One fine-tuning sequence: input ids and labels (-100 on the prompt: loss on the answer)."""

    song_id: str
    input_ids: list[int]
    labels: list[int]


def training_examples(encoder: Encoder, example: Any) -> list[TrainingExample]:
    """The fine-tuning sequences of a labelled song (one per lyric window), each cut at
    `max_length` when the answer outgrows its reserve."""
    answer = encoder.answer(answer_segments(example.label))
    out = []
    for prompt in encoder.prompts(example.title, example.artist, example.lyrics):
        ids = (prompt + answer)[:encoder.max_length]
        labels = ([IGNORE] * len(prompt) + answer)[:encoder.max_length]
        out.append(TrainingExample(example.song_id, ids, labels))
    return out
