"""The `llm` backend's prompt, answer schema, validation, verdict logprobs, chunking and merging.

Pure functions (no I/O): the model's answer is untrusted text, and everything that reaches a result
passes through `parse_answer`, which either returns a `ChunkAnswer` in the schema's vocabulary or
raises `AnswerError` saying what was wrong (the analyzer turns that into an error result, never a
made-up score).

Verdict probabilities: when the server returns token logprobs, `verdict_distribution` reads the
`top_logprobs` of the first token of the verdict's value and gives each verdict the probability
mass of the alternatives that begin it (an alternative that begins two verdicts, such as "c", is
split evenly), renormalised over the four verdicts; a verdict that no listed token begins gets
the smallest listed probability (at most what it could have had). When only the least listed token
begins a verdict (llama.cpp lists the sampled token even below the top k: SmolLM2 under a grammar),
the logprobs say nothing and the stated confidence is used. Under a schema-constrained answer only
the tier names can be written, so only they are matched (llama.cpp reports the model's logprobs
before its grammar masks them: the renormalised mass over tier-name tokens is the constrained
first-token distribution); unconstrained, the plan names (RECOMMENDED, ...) count too. Without
logprobs, or when no alternative begins a verdict, the stated confidence c goes to the stated
verdict and (1 - c) / 3 to each other one. A stated confidence above 1 and up to 100 is read as a
percentage.
"""

import json
import math
import re
from dataclasses import dataclass, field

from selah import schema
from selah.logprobs import value_alternatives

SOURCE_LOGPROBS, SOURCE_STATED = "logprobs", "stated_confidence"
REQUIRED = ("verdict", "score", "confidence", "biblical_themes", "concerns")
DOCTRINAL_CLARITY = ("clear", "mixed", "unclear", "none")

SYSTEM_PROMPT = (
    "You review song lyrics for Christian listeners. Read the lyrics and answer with one JSON "
    "object only, no other text. Fields: verdict (one of freely_listen, context_required, "
    "caution_limit, avoid_formation), score (0-100: freely_listen 85-100, context_required "
    "60-84, caution_limit 40-59, avoid_formation 0-39), confidence (0-1, in the verdict), "
    "biblical_themes [{theme, confidence}] using these theme names: " + ", ".join(
        schema.THEME_NAMES) + "; concerns [{category, severity, explanation}] with category one "
    "of the negative themes and severity low, medium, high or critical; supporting_scripture "
    "[{reference, theme}] such as \"Ephesians 5:3\"; narrative_voice (artist, collective, "
    "character or God); formation_risk (low, medium, high); lament_filter_applied (true when "
    "honest grief or struggle is lament, not a concern); doctrinal_clarity; sentiment; emotion; "
    "summary (one sentence); guidance (one sentence)."
)


def answer_schema() -> dict:
    """The JSON schema the server is asked to follow (the verdict first: its logprobs come
    early, before the model has talked itself into a score)."""
    string = {"type": "string"}
    unit = {"type": "number", "minimum": 0, "maximum": 1}
    return {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": list(schema.VERDICTS)},
            "score": {"type": "integer", "minimum": 0, "maximum": 100},
            "confidence": unit,
            "biblical_themes": {"type": "array", "items": {
                "type": "object", "properties": {"theme": string, "confidence": unit},
                "required": ["theme", "confidence"]}},
            "concerns": {"type": "array", "items": {
                "type": "object", "properties": {
                    "category": string, "severity": {"type": "string",
                                                     "enum": list(schema.SEVERITIES)},
                    "explanation": string},
                "required": ["category", "severity", "explanation"]}},
            "supporting_scripture": {"type": "array", "items": {
                "type": "object", "properties": {"reference": string, "theme": string},
                "required": ["reference", "theme"]}},
            "narrative_voice": {"type": "string", "enum": list(schema.NARRATIVE_VOICES)},
            "formation_risk": {"type": "string", "enum": list(schema.FORMATION_RISKS)},
            "lament_filter_applied": {"type": "boolean"},
            "doctrinal_clarity": {"type": "string", "enum": list(DOCTRINAL_CLARITY)},
            "sentiment": {"type": "string", "enum": list(schema.SENTIMENT_LABELS)},
            "emotion": {"type": "string", "enum": list(schema.EMOTION_LABELS)},
            "summary": string,
            "guidance": string,
        },
        "required": list(REQUIRED),
    }


def user_prompt(title: str, artist: str, lyrics: str, part: int, parts: int) -> str:
    """The user message for one chunk (`part` of `parts`, 1-based)."""
    where = f" (part {part} of {parts})" if parts > 1 else ""
    return f"Title: {title}\nArtist: {artist}\nLyrics{where}:\n{lyrics}"


def split_lyrics(lyrics: str, limit: int) -> list[str]:
    """Chunks of at most `limit` characters, cut on line boundaries (a longer line is cut
    inside itself); one chunk when the lyrics fit."""
    text = lyrics.strip()
    if len(text) <= limit:
        return [text]
    chunks, current = [], ""
    for line in text.splitlines():
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            candidate = line
        current = candidate
    if current.strip():
        chunks.append(current)
    return [c for c in chunks if c.strip()]


class AnswerError(ValueError):
    """The model's answer is not usable; the message says why."""


@dataclass
class ChunkAnswer:
    """One chunk's validated answer, in the schema's vocabulary."""

    verdict: str
    score: float
    confidence: float
    probabilities: dict[str, float]
    source: str
    themes: dict[str, float] = field(default_factory=dict)
    concerns: dict[str, tuple[str, float, str]] = field(default_factory=dict)
    scripture: list[tuple[str, str | None]] = field(default_factory=list)
    extras: dict = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


def _content(reply: dict) -> tuple[str, list | None]:
    try:
        choice = reply["choices"][0]
        text = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise AnswerError("the server's reply has no choices[0].message.content") from None
    if not isinstance(text, str):
        raise AnswerError("the server's reply content is not text")
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
    return text, tokens if isinstance(tokens, list) else None


def _json_object(text: str) -> dict:
    """The answer's JSON object (inside ```json fences or surrounding words, if any)."""
    stripped = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", stripped, re.DOTALL)
    candidates = [stripped] + ([fenced.group(1)] if fenced else [])
    if "{" in stripped and "}" in stripped:
        candidates.append(stripped[stripped.index("{"):stripped.rindex("}") + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
        raise AnswerError(f"the answer is JSON but not an object ({type(value).__name__})")
    raise AnswerError(f"the answer is not valid JSON: {stripped[:120]!r}")


def _number(value, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise AnswerError(f"{name} is not a number: {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise AnswerError(f"{name} is not a number: {value!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise AnswerError(f"{name} {value!r} is outside {low:g}-{high:g}")
    return number


def _items(value, name: str) -> list:
    if not isinstance(value, list):
        raise AnswerError(f"{name} is not a list")
    return value


def _unit(value, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return min(1.0, max(0.0, number)) if math.isfinite(number) else default


def _themes(items: list, dropped: list) -> dict[str, float]:
    themes: dict[str, float] = {}
    for item in items:
        name, confidence = (item, 1.0) if isinstance(item, str) else (
            (item.get("theme") or item.get("name"), _unit(item.get("confidence"), 1.0))
            if isinstance(item, dict) else (None, 0.0))
        theme = schema.fold_theme(schema.parse_theme_string(name)[0]) if isinstance(
            name, str) else None
        if theme is None:
            dropped.append(f"theme {name!r}")
        elif confidence > 0:
            themes[theme.name] = max(confidence, themes.get(theme.name, 0.0))
    return themes


def _concerns(items: list, dropped: list) -> dict[str, tuple[str, float, str]]:
    concerns: dict[str, tuple[str, float, str]] = {}
    for item in items:
        if isinstance(item, str):
            item = dict(zip(("category", "severity"), schema.parse_concern_string(item)))
        if not isinstance(item, dict) or not isinstance(item.get("category"), str):
            dropped.append(f"concern {item!r}")
            continue
        category = schema.fold_concern(item["category"])
        if category is None:  # a negative theme spelling is a concern category too
            theme = schema.fold_theme(item["category"])
            category = theme.name if theme and theme.category == "negative" else None
        if category is None:
            dropped.append(f"concern {item['category']!r}")
            continue
        severity = schema.canonical_severity(str(item.get("severity") or "")) or "medium"
        explanation = str(item.get("explanation") or "").strip()
        confidence = _unit(item.get("confidence"), 1.0)
        previous = concerns.get(category)
        concerns[category] = worst(previous, (severity, confidence, explanation))
    return concerns


def worst(a: tuple | None, b: tuple) -> tuple:
    """The concern `(severity, confidence, explanation)` of the higher severity (then
    confidence)."""
    if a is None:
        return b
    rank = schema.SEVERITIES.index
    return max(a, b, key=lambda c: (rank(c[0]), c[1]))


def _scripture(items: list, dropped: list) -> list[tuple[str, str | None]]:
    from selah.scripture import canonical_reference

    found: list[tuple[str, str | None]] = []
    for item in items:
        reference = item.get("reference") if isinstance(item, dict) else item
        theme = item.get("theme") if isinstance(item, dict) else None
        canonical = canonical_reference(reference) if isinstance(reference, str) else None
        if canonical is None:
            dropped.append(f"scripture {reference!r}")
            continue
        folded = schema.fold_theme(theme) if isinstance(theme, str) else None
        if canonical not in [r for r, _ in found]:
            found.append((canonical, folded.name if folded else None))
    return found


def _choice(value, allowed: tuple[str, ...]) -> str | None:
    if not isinstance(value, str):
        return None
    folded = {a.lower(): a for a in allowed}
    return folded.get(value.strip().lower())


def parse_answer(reply: dict, constrained: bool = True) -> ChunkAnswer:
    """The validated answer of one chat completion; `AnswerError` when it is unusable.
    `constrained`: the server was given the answer schema (only tier names can be written)."""
    text, tokens = _content(reply)
    data = _json_object(text)
    missing = [name for name in REQUIRED if name not in data]
    if missing:
        raise AnswerError(f"the answer misses required field(s): {', '.join(missing)}")
    try:
        verdict = schema.canonical_verdict(data["verdict"])
    except ValueError:
        raise AnswerError(f"verdict {data['verdict']!r} is not one of "
                          f"{', '.join(schema.VERDICTS)}") from None
    score = _number(data["score"], "score", 0, 100)
    confidence = _number(data["confidence"], "confidence", 0, 100)
    confidence = confidence / 100 if confidence > 1 else confidence
    dropped: list[str] = []
    themes = _themes(_items(data["biblical_themes"], "biblical_themes"), dropped)
    concerns = _concerns(_items(data["concerns"], "concerns"), dropped)
    scripture = data.get("supporting_scripture") or []
    scripture = _scripture(scripture if isinstance(scripture, list) else [scripture], dropped)
    probabilities = verdict_distribution(text, tokens, constrained) if tokens else None
    source, stated = (SOURCE_LOGPROBS if probabilities else SOURCE_STATED), confidence
    if probabilities is None:
        probabilities = stated_distribution(verdict, confidence)
    else:
        confidence = probabilities[verdict]
    extras = {
        "narrative_voice": _choice(data.get("narrative_voice"), schema.NARRATIVE_VOICES),
        "formation_risk": _choice(data.get("formation_risk"), schema.FORMATION_RISKS),
        "lament_filter_applied": data.get("lament_filter_applied") is True,
        "doctrinal_clarity": _choice(data.get("doctrinal_clarity"), DOCTRINAL_CLARITY),
        "sentiment": _choice(data.get("sentiment"), schema.SENTIMENT_LABELS),
        "emotion": _choice(data.get("emotion"), schema.EMOTION_LABELS),
        "summary": str(data.get("summary") or "").strip()[:500],
        "guidance": str(data.get("guidance") or "").strip()[:500],
        "stated_confidence": stated,
    }
    return ChunkAnswer(verdict, score, confidence, probabilities, source, themes, concerns,
                       scripture, extras, dropped)


def stated_distribution(verdict: str, confidence: float) -> dict[str, float]:
    """c on the stated verdict, (1 - c) / 3 on each other one."""
    rest = (1.0 - confidence) / (len(schema.VERDICTS) - 1)
    return {v: confidence if v == verdict else rest for v in schema.VERDICTS}


def verdict_distribution(text: str, tokens: list, constrained: bool = True
                         ) -> dict[str, float] | None:
    """Verdict probabilities from the top_logprobs of the verdict value's first token, or None
    when the tokens do not line up with the text or no alternative begins a verdict.
    `constrained`: only tier names could be written (else plan names count too)."""
    found = value_alternatives(text, tokens, "verdict")
    return None if found is None else _mass(*found, constrained)


def _mass(prefix: str, alternatives: list, constrained: bool) -> dict[str, float] | None:
    names = {v: (v,) if constrained else (v, schema.PLAN_NAMES[v].lower())
             for v in schema.VERDICTS}
    mass = dict.fromkeys(schema.VERDICTS, 0.0)
    for alternative in alternatives:
        piece, logprob = alternative.get("token"), alternative.get("logprob")
        if not isinstance(piece, str) or not isinstance(logprob, (int, float)):
            continue
        if not piece.startswith(prefix):
            continue
        rest = piece[len(prefix):].split('"')[0]
        rest = rest if constrained else rest.strip().lower()  # the grammar allows exact text only
        if not rest:
            continue
        matched = [v for v, spellings in names.items()
                   if any(s.startswith(rest) or (rest.startswith(s)) for s in spellings)]
        for verdict in matched:
            mass[verdict] += math.exp(logprob) / len(matched)
    floor = min((math.exp(a["logprob"]) for a in alternatives
                 if isinstance(a.get("logprob"), (int, float))), default=0.0)
    if max(mass.values()) <= floor:  # only the least listed token (the sampled one) begins one
        return None
    # A verdict no listed token begins had less than the least listed one (the sampled token is
    # listed even below the top k): give it that much, so a lone listed verdict is not certain.
    mass = {v: m if m > 0 else floor for v, m in mass.items()}
    total = sum(mass.values())
    return {v: m / total for v, m in mass.items()}
