"""Augmented views of a song: random contiguous runs of its lyric lines, for training only.

A view is another song to the training stages: its own id (`PARENT#viewN`), the lines it keeps,
and the parent's title, artist and gold label. The gold label may not hold for a part of a song (a
view can leave out the verse that made the song `avoid_formation`), which is why a teacher labels
every view from the view's own text; a gold-label student trained on views learns the parent's
label. Views are drawn from a seeded generator keyed by the parent's id, so a song's views do not
depend on which other songs are in the run.
"""

import dataclasses
import hashlib
import random
from dataclasses import dataclass

from training.data.readers import Example

SEPARATOR = "#view"
MIN_LINES = 6  # a song of fewer non-blank lines has no views
SHARE = (0.4, 0.8)  # a view keeps this share of the lines (uniform)


@dataclass(frozen=True)
class View:
    """One view: the song it is, the parent's id, and the lines kept (1-based, inclusive, counted
    over the parent's non-blank lines)."""

    example: Example
    parent: str
    first_line: int
    last_line: int

    def provenance(self) -> dict:
        """What a labels file records of a view."""
        return {"view_of": self.parent, "lines": [self.first_line, self.last_line]}


def parent_id(song_id: str) -> str:
    """The song a view was cut from (a song's own id for a song)."""
    return song_id.split(SEPARATOR, 1)[0]


def song_views(example: Example, count: int, seed: int = 0) -> list[View]:
    """Up to `count` distinct views of a song (none when it has under MIN_LINES lines)."""
    lines = [line for line in example.lyrics.splitlines() if line.strip()]
    if count <= 0 or len(lines) < MIN_LINES:
        return []
    key = hashlib.sha256(f"{seed}:{example.song_id}".encode()).digest()
    rng = random.Random(int.from_bytes(key[:8], "big"))
    views, seen = [], set()
    for _ in range(count * 4):  # a few tries for distinct spans
        if len(views) == count:
            break
        size = max(3, round(len(lines) * rng.uniform(*SHARE)))
        start = rng.randrange(0, len(lines) - size + 1)
        if (start, size) in seen or size == len(lines):
            continue
        seen.add((start, size))
        view_id = f"{example.song_id}{SEPARATOR}{len(views)}"
        text = "\n".join(lines[start:start + size])
        views.append(View(dataclasses.replace(example, song_id=view_id, lyrics=text),
                          example.song_id, start + 1, start + size))
    return views


def with_views(examples: list[Example], count: int, seed: int = 0) -> tuple[list[Example], dict]:
    """The songs followed by their views, and `{view id: View}`."""
    views = [view for example in examples for view in song_views(example, count, seed)]
    return list(examples) + [v.example for v in views], {v.example.song_id: v for v in views}
