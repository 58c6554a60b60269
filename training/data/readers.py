"""Labelled songs: readers for the three upstream formats, de-duplication, splits, chat rendering.

Formats (one JSON object a line; `auto` tells them apart by their keys):
- training: `{title, artist, lyrics, label: {...}}`
- evaluation: `{title, artist, lyrics, labels: {...}}`
- chat: `{messages: [system, user "...Title: T\\nArtist: A\\n\\nLyrics:\\n...",
  assistant "<label JSON>"]}`

A line that cannot be used (bad JSON, missing lyrics, unknown verdict, ...) raises `DataError`
naming the file and line, or, with `skip_bad`, is skipped and counted; a file with no usable line
is always an error. Commands:

    python -m training.data report FILE [--signals] [--skip-bad]
    python -m training.data split FILE --out DIR [--k 5] [--holdout 0.15] [--seed 0]
"""

import hashlib
import json
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selah import schema
from selah.chat import build_messages, render_chat  # noqa: F401 - part of this stage's API
from training.data.normalize import LabelError, NormStats, normalize_label

FORMATS = ("training", "evaluation", "chat")
_CHAT_USER_RES = (
    re.compile(r"Title:[ \t]*(?P<title>[^\n]*)\n[ \t]*Artist:[ \t]*(?P<artist>[^\n]*)\n\s*"
               r"Lyrics:[ \t]*\n?(?P<lyrics>.*)\Z", re.S),
    # The plan's example prompt: "Analyze the song 'T' by 'A' with the following lyrics:\n\n..."
    re.compile(r"song '(?P<title>[^\n]*)' by '(?P<artist>[^\n]*)' with the following lyrics:"
               r"\n\n?(?P<lyrics>.*)\Z", re.S),
)
_FENCE_RE = re.compile(r"^\s*```(?:json)?\s*(?P<body>.*?)\s*```\s*$", re.S)


class DataError(ValueError):
    """An input file or line that cannot be used; the message names the file and line."""


@dataclass
class Example:
    """One labelled song, normalised. `label_signals` are signal values the label carried itself."""

    song_id: str
    title: str
    artist: str
    lyrics: str
    label: schema.Label
    label_signals: dict = field(default_factory=dict)
    fmt: str = "training"
    line: int = 0

    def song(self) -> dict:
        """The `{title, artist, lyrics}` dict the analyzer interface takes."""
        return {"title": self.title, "artist": self.artist, "lyrics": self.lyrics}


@dataclass
class DataReport:
    """What reading a file did: lines, formats, skips, duplicates and normalisation counts."""

    path: str
    lines: int = 0
    blank: int = 0
    formats: Counter = field(default_factory=Counter)
    skipped: list = field(default_factory=list)  # (line, reason)
    duplicates: list = field(default_factory=list)  # (line, kind, first line)
    stats: NormStats = field(default_factory=NormStats)


def _norm_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def song_id(title: str, artist: str) -> str:
    """Stable id of a song: a hash of its title and artist, ignoring case and punctuation."""
    return _digest(_norm_text(title) + "\x1f" + _norm_text(artist))


def detect_format(obj: dict) -> str:
    """`training`, `evaluation` or `chat` from the record's keys; DataError when none fits."""
    if "messages" in obj:
        return "chat"
    if "labels" in obj:
        return "evaluation"
    if "label" in obj:
        return "training"
    raise DataError("record has none of 'label', 'labels' or 'messages'; cannot tell its format")


def _from_chat(obj: dict) -> tuple[Any, Any, Any, Any]:
    messages = obj.get("messages")
    if not isinstance(messages, list):
        raise DataError("'messages' must be a list")
    by_role = {m.get("role"): m.get("content") for m in messages if isinstance(m, dict)}
    user, answer = by_role.get("user"), by_role.get("assistant")
    if not isinstance(user, str):
        raise DataError("chat record has no user message")
    match = next((m for m in (r.search(user) for r in _CHAT_USER_RES) if m), None)
    if match is None:
        raise DataError("user message has no 'Title:/Artist:/Lyrics:' block: missing lyrics")
    if not isinstance(answer, str):
        raise DataError("chat record has no assistant message (the label)")
    fenced = _FENCE_RE.match(answer)
    try:
        label = json.loads(fenced.group("body") if fenced else answer)
    except json.JSONDecodeError as exc:
        raise DataError(f"assistant message is not label JSON: {exc}") from None
    return match.group("title").strip(), match.group("artist").strip(), match.group("lyrics"), label


def parse_record(obj: Any, fmt: str, stats: NormStats) -> tuple[dict, schema.Label, dict, str]:
    """`(song, label, label_signals, format)` from one decoded line; DataError when unusable."""
    if not isinstance(obj, dict):
        raise DataError(f"line is a JSON {type(obj).__name__}, not an object")
    fmt = detect_format(obj) if fmt == "auto" else fmt
    if fmt == "chat":
        title, artist, lyrics, raw_label = _from_chat(obj)
    else:
        key = "label" if fmt == "training" else "labels"
        title, artist, lyrics = obj.get("title"), obj.get("artist"), obj.get("lyrics")
        if key not in obj:
            raise DataError(f"{fmt}-format record has no '{key}'")
        raw_label = obj[key]
    if lyrics is None:
        raise DataError("missing lyrics")
    if not isinstance(lyrics, str):
        raise DataError(f"lyrics must be a string, not {type(lyrics).__name__}")
    if not isinstance(title, str) or not title.strip():
        raise DataError("missing title")
    if artist is None:
        stats.add("record.artist_missing")
        artist = ""
    try:
        label, signals = normalize_label(raw_label, stats)
    except LabelError as exc:
        raise DataError(str(exc)) from None
    return {"title": title, "artist": str(artist), "lyrics": lyrics}, label, signals, fmt


def read_examples(path: str | Path, *, fmt: str = "auto", skip_bad: bool = False,
                  dedupe: bool = True) -> tuple[list[Example], DataReport]:
    """Normalised Examples from a JSONL file of labelled songs, and the report of what it did."""
    if fmt not in ("auto",) + FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid: auto, {', '.join(FORMATS)}")
    path = Path(path)
    report = DataReport(path=str(path))
    examples: list[Example] = []
    with path.open(encoding="utf-8", errors="surrogateescape") as handle:
        for number, text in enumerate(handle, start=1):
            report.lines = number
            if not text.strip():
                report.blank += 1
                continue
            try:
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DataError(f"bad JSON: {exc}") from None
                song, label, signals, kind = parse_record(obj, fmt, report.stats)
            except DataError as exc:
                if not skip_bad:
                    raise DataError(f"{path}:{number}: {exc} (use --skip-bad to skip such lines)"
                                    ) from None
                report.skipped.append((number, str(exc)))
                continue
            report.formats[kind] += 1
            examples.append(Example(song_id(song["title"], song["artist"]), song["title"],
                                    song["artist"], song["lyrics"], label, signals, kind, number))
    if not examples:
        raise DataError(f"{path}: no usable records ({report.lines} lines, "
                        f"{len(report.skipped)} skipped, {report.blank} blank)")
    return (deduplicate(examples, report) if dedupe else examples), report


def deduplicate(examples: list[Example], report: DataReport | None = None) -> list[Example]:
    """Keep the first of songs with the same title and artist, or the same (non-trivial) lyrics."""
    seen_ids: dict[str, int] = {}
    seen_lyrics: dict[str, int] = {}
    kept = []
    for example in examples:
        lyrics_key = _norm_text(example.lyrics)
        lyrics_key = _digest(lyrics_key) if len(lyrics_key) > 10 else None
        if example.song_id in seen_ids:
            duplicate = ("title_artist", seen_ids[example.song_id])
        elif lyrics_key and lyrics_key in seen_lyrics:
            duplicate = ("lyrics", seen_lyrics[lyrics_key])
        else:
            seen_ids[example.song_id] = example.line
            if lyrics_key:
                seen_lyrics[lyrics_key] = example.line
            kept.append(example)
            continue
        if report is not None:
            report.duplicates.append((example.line, *duplicate))
    return kept


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def assign_splits(examples: list[Example], k: int = 5, holdout: float = 0.15,
                  seed: int = 0) -> dict[str, str]:
    """`{song_id: "holdout" | "fold0".."fold{k-1}"}`, stratified by verdict, by song, deterministic.

    Each verdict's songs are ordered by a seeded hash of their id (not by file order), the first
    `round(n * holdout)` go to the untouched hold-out, and the rest are dealt round-robin into `k`
    folds, continuing the deal across verdicts so fold sizes differ by at most one.
    """
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    by_verdict: dict[str, list[str]] = defaultdict(list)
    for example in examples:
        if example.song_id not in by_verdict[example.label.verdict]:
            by_verdict[example.label.verdict].append(example.song_id)
    splits: dict[str, str] = {}
    dealt = 0
    for verdict in sorted(by_verdict, key=schema.VERDICTS.index):
        ids = sorted(by_verdict[verdict], key=lambda sid: _rank(seed, sid))
        n_holdout = int(round(len(ids) * holdout))
        for sid in ids[:n_holdout]:
            splits[sid] = "holdout"
        for sid in ids[n_holdout:]:
            splits[sid] = f"fold{dealt % k}"
            dealt += 1
    return splits


def kfold(examples: list[Example], k: int = 5, holdout: float = 0.15, seed: int = 0
          ) -> list[tuple[list[Example], list[Example]]]:
    """`k` (train, validation) pairs over the non-hold-out songs of `assign_splits`."""
    splits = assign_splits(examples, k, holdout, seed)
    folds = []
    for index in range(k):
        name = f"fold{index}"
        train = [e for e in examples if splits[e.song_id] not in (name, "holdout")]
        folds.append((train, [e for e in examples if splits[e.song_id] == name]))
    return folds


def holdout_split(examples: list[Example], holdout: float = 0.15, seed: int = 0
                  ) -> tuple[list[Example], list[Example]]:
    """(development songs, hold-out songs) of `assign_splits`."""
    splits = assign_splits(examples, 2, holdout, seed)
    return ([e for e in examples if splits[e.song_id] != "holdout"],
            [e for e in examples if splits[e.song_id] == "holdout"])
