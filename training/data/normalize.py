"""Normalise one upstream label (any of the three formats) onto `selah.schema`; count each fix.

Nothing is changed silently: each fold, fix or drop adds to a counter in `NormStats`, and
`python -m training.data report` prints them. A label that cannot be used (no verdict, an unknown
verdict, no score, a score outside 0-100) raises `LabelError`; the reader turns that into an error
naming the line, or a counted skip.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

from selah import schema
from selah.scripture import parse_references

SIGNAL_FIELDS = ("sentiment", "emotion", "safety")
_SAFETY_ALIASES = {"safe": "non_toxic", "non_toxic": "non_toxic", "nontoxic": "non_toxic",
                   "clean": "non_toxic", "unsafe": "toxic", "toxic": "toxic"}
_KNOWN_KEYS = {
    "score", "verdict", "formation_risk", "narrative_voice", "lament_filter_applied",
    "themes_positive", "themes_negative", "themes", "concerns", "scripture_references",
    "analysis", *SIGNAL_FIELDS,
}


class LabelError(ValueError):
    """A label that cannot be normalised; the message says which field and why."""


@dataclass
class NormStats:
    """What normalisation did: event counts and, per kind, which raw value went where."""

    counts: Counter = field(default_factory=Counter)
    folds: Counter = field(default_factory=Counter)  # (kind, raw, canonical or None) -> n

    def add(self, event: str, n: int = 1) -> None:
        """Count `n` occurrences of `event` (a dotted name such as "theme.folded")."""
        self.counts[event] += n

    def fold(self, kind: str, raw: str, canonical: str | None) -> None:
        """Record that raw value `raw` of `kind` became `canonical` (None: dropped)."""
        self.folds[(kind, raw, canonical)] += 1


def normalize_label(raw: Any, stats: NormStats) -> tuple[schema.Label, dict]:
    """`(Label, signals the label carries itself)` for one raw label; LabelError if unusable."""
    if not isinstance(raw, Mapping):
        raise LabelError(f"label must be a JSON object, not {type(raw).__name__}")
    extra = sorted(set(raw) - _KNOWN_KEYS)
    if extra:
        stats.add("label.unknown_keys_ignored", len(extra))
    score = _score(raw, stats)
    verdict = _verdict(raw, stats)
    if schema.verdict_for_score(score) != verdict:
        stats.add("verdict.outside_score_band")
    label = schema.Label(
        score=score,
        verdict=verdict,
        formation_risk=_choice(raw, "formation_risk", schema.FORMATION_RISKS, stats),
        narrative_voice=_choice(raw, "narrative_voice", schema.NARRATIVE_VOICES, stats),
        lament_filter_applied=_flag(raw, "lament_filter_applied", stats),
        themes=_themes(raw, stats),
        concerns=_concerns(raw.get("concerns"), stats),
        scripture_references=_scripture(raw.get("scripture_references"), stats),
        analysis=_analysis(raw, stats),
    )
    return label, _signals(raw, stats)


def _verdict(raw: Mapping, stats: NormStats) -> str:
    value = raw.get("verdict")
    if value is None or value == "":
        raise LabelError("label has no verdict")
    try:
        verdict = schema.canonical_verdict(value)
    except ValueError as exc:
        raise LabelError(str(exc)) from None
    if value != verdict:
        stats.add("verdict.alias_folded")
        stats.fold("verdict", str(value), verdict)
    return verdict


def _score(raw: Mapping, stats: NormStats) -> int:
    value = raw.get("score")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise LabelError(f"score {raw.get('score')!r} is not a number") from None
        stats.add("score.parsed_from_string")
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LabelError(f"label has no numeric score (got {raw.get('score')!r})")
    if isinstance(value, float) and 0.0 <= value <= 1.0:
        # The plan's chat examples write the score as a fraction (0.95); ints are never scaled.
        value *= 100.0
        stats.add("score.fraction_scaled")
    if not 0 <= value <= 100:
        raise LabelError(f"score {value!r} is outside 0-100")
    if value != int(value):
        stats.add("score.rounded")
    return int(round(value))


def _choice(raw: Mapping, key: str, allowed: tuple[str, ...], stats: NormStats) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        stats.add(f"{key}.missing")
        return None
    by_key = {a.lower(): a for a in allowed}
    canonical = by_key.get(str(value).strip().lower())
    if canonical is None:
        stats.add(f"{key}.unknown_dropped")
        stats.fold(key, str(value), None)
    elif canonical != value:
        stats.add(f"{key}.case_fixed")
    return canonical


def _flag(raw: Mapping, key: str, stats: NormStats) -> bool | None:
    value = raw.get(key)
    if isinstance(value, bool):
        return value
    if value is None:
        stats.add(f"{key}.missing")
        return None
    text = str(value).strip().lower()
    if text in {"true", "yes", "1"}:
        stats.add(f"{key}.parsed")
        return True
    if text in {"false", "no", "0"}:
        stats.add(f"{key}.parsed")
        return False
    stats.add(f"{key}.unknown_dropped")
    return None


def _theme_items(raw: Mapping, stats: NormStats):
    """(raw text, polarity or None) for every theme entry in the label, in order."""
    for key, polarity in (("themes_positive", "positive"), ("themes_negative", "negative"),
                          ("themes", None)):
        items = raw.get(key) or []
        if isinstance(items, str):
            items = [items]
            stats.add("theme.not_a_list_fixed")
        for item in items:
            if isinstance(item, Mapping):
                name = item.get("theme") or item.get("name") or ""
                points = item.get("points")
                yield (f"{name} ({points:+d})" if isinstance(points, int) else str(name)), polarity
            else:
                yield str(item), polarity


def _themes(raw: Mapping, stats: NormStats) -> tuple[str, ...]:
    kept: list[str] = []
    for text, polarity in _theme_items(raw, stats):
        name, points = schema.parse_theme_string(text)
        theme = schema.fold_theme(name)
        if theme is None:
            stats.add("theme.unknown_dropped")
            stats.fold("theme", name, None)
            continue
        stats.fold("theme", name, theme.name)
        if name != theme.name:
            stats.add("theme.folded")
        if polarity and (polarity == "negative") != (theme.category == "negative"):
            stats.add("theme.polarity_conflict")
        if points is not None and points != theme.points:
            stats.add("theme.points_refolded")
        if theme.name in kept:
            stats.add("theme.duplicate_merged")
            continue
        kept.append(theme.name)
    stats.add("theme.kept", len(kept))
    return tuple(sorted(kept, key=schema.THEME_NAMES.index))


def _concerns(items: Any, stats: NormStats) -> tuple[tuple[str, str], ...]:
    if isinstance(items, (str, Mapping)):
        items = [items]
        stats.add("concern.not_a_list_fixed")
    kept: dict[str, str] = {}
    for item in items or []:
        if isinstance(item, Mapping):
            name = str(item.get("category") or item.get("type") or "")
            severity = item.get("severity")
        else:
            name, severity = schema.parse_concern_string(str(item))
        category = schema.fold_concern(name)
        if category is None:
            stats.add("concern.unknown_dropped")
            stats.fold("concern", name, None)
            continue
        stats.fold("concern", name, category)
        if name != category:
            stats.add("concern.folded")
        if severity is None:
            stats.add("concern.severity_missing_defaulted")
            level = "medium"
        else:
            level = schema.canonical_severity(severity)
            if level is None:
                stats.add("concern.bad_severity_dropped")
                stats.fold("severity", str(severity), None)
                continue
            if level != severity:
                stats.add("concern.severity_fixed")
        if category in kept:
            stats.add("concern.duplicate_merged")
            level = max(level, kept[category], key=schema.SEVERITIES.index)
        kept[category] = level
    stats.add("concern.kept", len(kept))
    order = schema.CONCERN_CATEGORIES.index
    return tuple(sorted(kept.items(), key=lambda item: order(item[0])))


def _scripture(items: Any, stats: NormStats) -> tuple[str, ...]:
    if isinstance(items, str):
        items = [items]
        stats.add("scripture.not_a_list_fixed")
    kept: list[str] = []
    for item in items or []:
        text = str(item)
        found = parse_references(text)
        if not found:
            stats.add("scripture.invalid_dropped")
            stats.fold("scripture", text, None)
            continue
        if len(found) > 1:
            stats.add("scripture.split")
        elif found[0] != text.strip():
            stats.add("scripture.canonicalised")
        for reference in found:
            if reference in kept:
                stats.add("scripture.duplicate_merged")
            else:
                kept.append(reference)
    stats.add("scripture.kept", len(kept))
    return tuple(kept)


def _analysis(raw: Mapping, stats: NormStats) -> str:
    value = raw.get("analysis")
    if not isinstance(value, str) or not value.strip():
        stats.add("analysis.missing")
        return ""
    return value.strip()


def _signals(raw: Mapping, stats: NormStats) -> dict:
    """Sentiment, emotion and safety values a label carries itself (the plan's chat format)."""
    found = {}
    vocab = {"sentiment": schema.SENTIMENT_LABELS, "emotion": schema.EMOTION_LABELS}
    for key in SIGNAL_FIELDS:
        value = raw.get(key)
        if value is None:
            continue
        if key == "safety":
            canonical = (("toxic" if value else "non_toxic") if isinstance(value, bool)
                         else _SAFETY_ALIASES.get(str(value).strip().lower()))
        else:
            text = str(value).strip().lower()
            canonical = text if text in vocab[key] else None
        if canonical is None:
            stats.add(f"signal.{key}_unknown_dropped")
            stats.fold(key, str(value), None)
            continue
        found[key] = canonical
    return found
