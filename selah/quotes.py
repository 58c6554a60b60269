"""Scripture a lyric quotes or closely paraphrases, found against every Bible pythonbible has.

Lyric and verses are read as the same normalised words (`selah.bible_words`), so a lyric in
today's English meets the KJV's or the ASV's wording of the same verse.

The index (`QuoteIndex`) maps every 4-word run of every verse of every installed translation to
its verses; runs found in more than `COMMON_RUN_VERSES` verses ("and it came to pass") are left
out. It is built once per machine (a few seconds) and kept on disk
(`cache_file`, keyed by the translations' packages and this module's rules); a process reads it
back in a fraction of a second (`default_index`). A lyric's own runs look up the
verses they share; each such verse is aligned with the lyric (`_regions`: hits on one diagonal,
a word or two of difference allowed), and a region counts as a quote when it matches at least
`MIN_WORDS` of the verse's words, in order, and those words are rare enough in scripture
(`MIN_WEIGHT`: their summed inverse verse frequency), so "I love you" or "all the days of my
life" in a love song are not scripture. A phrase that `MAX_TIES` verses or more match as well
is an idiom, not a quote of one of them, and is dropped. The thresholds were set on
`tests/selah/fixtures/quote_songs_dev.json` and confirmed on `quote_songs_test.json` (songs
the project wrote; docs/benchmarks.md has both sets' figures).
"""

import functools
import hashlib
import math
import os
import pickle
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from selah.bible_words import words

# Bumped when the index's layout or the normalisation changes (a cached index is then rebuilt).
INDEX_FORMAT = 3
# Words a run has; runs are the index's keys and the smallest unit of a match.
RUN = 4
# A run found in more verses than this is a stock phrase of scripture; it is not indexed.
COMMON_RUN_VERSES = 60
# A quote matches at least this many of a verse's words, in order ...
MIN_WORDS = 5
# ... whose summed inverse verse frequency (ln(verses / verses with the word)) is at least this.
MIN_WEIGHT = 17.0
# A match that this many verses or more share equally is an idiom: dropped.
MAX_TIES = 7
# Words of difference a region may skip between two matching runs (on either side).
GAP = 2
# Verses looked at per song (those sharing the most runs with it).
MAX_CANDIDATES = 40

# The `theme` of a quoted verse's `supporting_scripture` entry (the contract's key is a string).
QUOTED_THEME = "Quoted in the lyrics"


@dataclass(frozen=True)
class Quote:
    """A verse the lyric quotes or paraphrases: where (1-based lyric lines) and how closely
    (`match`: the share of the verse's words found in order; `words`: how many)."""

    reference: str
    text: str
    translation: str
    lines: tuple[int, ...]
    match: float
    words: int

    def to_dict(self) -> dict:
        """The `supporting_scripture` entry (source "quoted")."""
        return {"reference": self.reference, "text": self.text, "theme": QUOTED_THEME,
                "source": "quoted", "lines": list(self.lines), "match": self.match,
                "matched_words": self.words, "translation": self.translation}


def translations() -> list:
    """Every pythonbible translation whose text is installed: `[(Version, Bible), ...]`."""
    import pythonbible
    from pythonbible.bible import BIBLE_PACKAGE_NAMES, get_bible
    from pythonbible.errors import MissingBiblePackageError

    found = []
    for version in BIBLE_PACKAGE_NAMES:
        try:
            found.append((version, get_bible(version, "plain_text_readers")))
        except (MissingBiblePackageError, ImportError):
            continue
    if not found:
        raise pythonbible.errors.MissingBiblePackageError("no pythonbible translation installed")
    return found


def _clean_verse(text: str) -> str:
    return re.sub(r"[\[\]]", "", text).strip()  # the KJV brackets words the translators added


@functools.lru_cache(maxsize=4096)
def _verse(bible, verse_id: int) -> tuple[str, list[str]]:
    """A verse's text in one translation and its normalised words."""
    text = _clean_verse(bible.get_scripture(verse_id, verse_id))
    return text, words(text)


class QuoteIndex:
    """Every verse's 4-word runs, for looking up the verses a lyric shares runs with.

    Words are numbered (`vocab`, 15 bits: past 32,767 words numbers are shared, which only adds
    candidates that the alignment then rejects); a run's key is its four numbers side by side
    (60 bits). `keys` is sorted and `verses[i]` is the verse holding run `keys[i]` (about 13 MB
    for three translations, 1.09 M runs)."""

    def __init__(self, bibles: Sequence):
        from array import array

        import torch

        self.bibles = list(bibles)
        self.verse_ids = sorted(set().union(*(b.verse_start_indices for _, b in self.bibles)))
        position = {vid: i for i, vid in enumerate(self.verse_ids)}
        self.vocab: dict[str, int] = {}
        frequency: Counter = Counter()
        stream, owner = array("q"), array("q")
        for _, bible in self.bibles:
            for vid in bible.verse_start_indices:
                verse = _verse(bible, vid)[1]
                frequency.update(set(verse))
                stream.extend(self._id(w) for w in verse)
                owner.extend([position[vid]] * len(verse))
        ids, verse_of = torch.frombuffer(stream, dtype=torch.int64), \
            torch.frombuffer(owner, dtype=torch.int64)
        inside = verse_of[:-RUN + 1] == verse_of[RUN - 1:]  # runs that stay inside one verse
        keys = _keys(ids)[inside]
        verses = verse_of[:-RUN + 1][inside]
        verses, order = torch.sort(verses, stable=True)
        keys, order2 = torch.sort(keys[order], stable=True)
        verses = verses[order2]  # sorted by key, then verse
        first = torch.ones_like(keys, dtype=torch.bool)
        first[1:] = (keys[1:] != keys[:-1]) | (verses[1:] != verses[:-1])
        keys, verses = keys[first], verses[first]
        _, counts = torch.unique_consecutive(keys, return_counts=True)
        kept = torch.repeat_interleave(counts <= COMMON_RUN_VERSES, counts)
        self.keys, self.verses = keys[kept].clone(), verses[kept].to(torch.int32).clone()
        documents = sum(len(bible.verse_start_indices) for _, bible in self.bibles)
        self.idf = {w: math.log(documents / n) for w, n in frequency.items()}
        self.max_idf = math.log(documents)
        _verse.cache_clear()  # the build read every verse; serving reads a few

    @classmethod
    def from_state(cls, bibles: Sequence, state: dict) -> "QuoteIndex":
        """An index as `state()` saved it, over the same translations."""
        index = cls.__new__(cls)
        index.bibles = list(bibles)
        for name in ("verse_ids", "vocab", "idf", "max_idf", "keys", "verses"):
            setattr(index, name, state[name])
        return index

    def state(self) -> dict:
        """Everything but the translations, for `from_state`."""
        return {name: getattr(self, name) for name in
                ("verse_ids", "vocab", "idf", "max_idf", "keys", "verses")}

    def _id(self, word: str) -> int:
        number = self.vocab.get(word)
        if number is None:
            number = self.vocab[word] = len(self.vocab) % 32767 + 1
        return number

    def run_keys(self, lyric: Sequence[str]) -> list[int]:
        """The index key of each of the lyric's runs that holds only words scripture has."""
        ids = [self.vocab.get(w, 0) for w in lyric]
        return [_key(a, b, c, d)
                for a, b, c, d in zip(ids, ids[1:], ids[2:], ids[3:]) if a and b and c and d]

    def verses_sharing(self, lyric: Sequence[str], least: int = 1) -> dict[int, int]:
        """`{verse index: runs it shares with the lyric}` for the verses sharing at least `least`
        runs, each lyric run counted once a verse."""
        import torch

        keys = torch.tensor(sorted(set(self.run_keys(lyric))), dtype=torch.int64)
        if not len(keys):
            return {}
        low = torch.searchsorted(self.keys, keys)
        sizes = torch.searchsorted(self.keys, keys, right=True) - low
        # every entry of every key found: low[k], low[k] + 1, ..., high[k] - 1
        starts = torch.repeat_interleave(low - (torch.cumsum(sizes, 0) - sizes), sizes)
        entries = starts + torch.arange(int(sizes.sum()))
        verses, counts = torch.unique(self.verses[entries], return_counts=True)
        kept = counts >= least
        return dict(zip(verses[kept].tolist(), counts[kept].tolist()))

    def weight(self, verse_words: Iterable[str]) -> float:
        """Summed inverse verse frequency of these words (an unknown word counts as rarest)."""
        return sum(self.idf.get(w, self.max_idf) for w in verse_words)

    def find(self, lyrics: str, limit: int = 4) -> list[Quote]:
        """The verses `lyrics` quotes or paraphrases, best first, at most `limit`."""
        lyric, line_of = [], []
        for number, line in enumerate(lyrics.splitlines(), start=1):
            found = words(line)
            lyric.extend(found)
            line_of.extend([number] * len(found))
        # MIN_WORDS (5) words in order hold at least two runs: a verse sharing one is no quote
        shared = self.verses_sharing(lyric, least=2)
        if not shared:
            return []
        candidates = sorted(shared, key=lambda v: (-shared[v], v))[:MAX_CANDIDATES]
        runs: dict[tuple, list[int]] = {}
        for i in range(len(lyric) - RUN + 1):
            runs.setdefault(tuple(lyric[i:i + RUN]), []).append(i)
        scored = [match for verse in candidates
                  if (match := self._best(verse, runs, line_of)) is not None]
        return self._choose(scored, limit)

    def _best(self, verse: int, runs: dict, line_of: list[int]) -> "_Match | None":
        """The verse's best-matching translation, or None when no region of any is a quote."""
        vid, best = self.verse_ids[verse], None
        for version, bible in self.bibles:
            if vid not in bible.verse_start_indices:
                continue
            text, verse_words = _verse(bible, vid)
            regions = []  # (verse words matched, their weight, lyric positions)
            for lyric_positions, verse_positions in _regions(runs, verse_words):
                weight = self.weight(verse_words[j] for j in verse_positions)
                if len(verse_positions) >= MIN_WORDS and weight >= MIN_WEIGHT:
                    regions.append((len(verse_positions), weight, lyric_positions))
            if not regions:
                continue
            count, weight, _ = max(regions, key=lambda r: r[:2])
            positions = frozenset(i for region in regions for i in region[2])
            match = _Match(count, weight, count / len(verse_words), verse,
                           _TITLES.get(version.name, version.name), text, positions,
                           tuple(sorted({line_of[i] for i in positions})))
            if best is None or match.rank > best.rank:
                best = match
        return best

    def _choose(self, scored: list["_Match"], limit: int) -> list[Quote]:
        """The best matches, each on lyric words no better one took; a phrase that MAX_TIES
        verses match as well is an idiom and is dropped."""
        quotes, used = [], set()
        scored.sort(key=lambda m: (-m.words, -m.weight, m.verse))
        for match in scored:
            ties = sum(1 for other in scored
                       if other.words >= match.words and other.positions & match.positions)
            if ties >= MAX_TIES or used & match.positions:
                continue
            used |= match.positions
            quotes.append(Quote(_reference(self.verse_ids[match.verse]), match.text,
                                match.translation, match.lines, round(match.coverage, 3),
                                match.words))
            if len(quotes) == limit:
                break
        return quotes


@dataclass(frozen=True)
class _Match:
    """One verse's best alignment with the lyric, in one translation."""

    words: int  # verse words matched in order, best region
    weight: float  # their summed inverse verse frequency
    coverage: float  # words / the verse's words
    verse: int  # index into QuoteIndex.verse_ids
    translation: str
    text: str
    positions: frozenset  # lyric word positions of every region that is a quote
    lines: tuple[int, ...]  # their lyric lines

    @property
    def rank(self) -> tuple:
        """Better matches rank higher: more words, then weight, then coverage."""
        return self.words, self.weight, self.coverage


def _key(a, b, c, d):
    """A run's key: its four 15-bit word numbers side by side (ints, or tensors elementwise)."""
    return a << 45 | b << 30 | c << 15 | d


def _keys(ids):
    """Each run's key from a tensor of word numbers."""
    return _key(ids[:-RUN + 1], ids[1:-RUN + 2], ids[2:-RUN + 3], ids[RUN - 1:])


def _regions(runs: dict[tuple, list[int]], verse: Sequence[str]
             ) -> list[tuple[list[int], set[int]]]:
    """Where the lyric (`runs`: each of its runs -> the positions it starts at) runs along the
    verse: `[(lyric positions, verse positions), ...]`, one region per stretch of hits on
    (nearly) one diagonal; a repeated chorus gives one region each time."""
    hits = sorted((i, j) for j in range(len(verse) - RUN + 1)
                  for i in runs.get(tuple(verse[j:j + RUN]), ()))
    regions, current, last = [], None, None
    for i, j in hits:
        if last is not None and i == last[0]:
            continue  # one verse position per lyric position: the first
        joins = (last is not None and 0 < i - last[0] <= RUN + GAP
                 and abs((i - last[0]) - (j - last[1])) <= GAP and j > last[1])
        if not joins:
            current = (set(), set())
            regions.append(current)
        current[0].update(range(i, i + RUN))
        current[1].update(range(j, j + RUN))
        last = (i, j)
    return [(sorted(lyric_positions), verse_positions)
            for lyric_positions, verse_positions in regions]


_TITLES = {"AMERICAN_STANDARD": "ASV", "KING_JAMES": "KJV", "WORLD_ENGLISH": "WEB"}


@functools.lru_cache(maxsize=4096)
def _reference(verse_id: int) -> str:
    from selah.scripture import canonical_reference

    import pythonbible

    reference = pythonbible.convert_verse_ids_to_references([verse_id])[0]
    text = pythonbible.format_scripture_references([reference])
    return canonical_reference(text) or text


def cache_file() -> Path | None:
    """Where the index is kept on disk: `$SELAH_QUOTE_CACHE`, else
    `~/.cache/selah/scripture-quotes.pt`; an empty `SELAH_QUOTE_CACHE` keeps it in memory only."""
    configured = os.environ.get("SELAH_QUOTE_CACHE")
    if configured is not None:
        return Path(configured).expanduser() if configured.strip() else None
    return Path.home() / ".cache" / "selah" / "scripture-quotes.pt"


def fingerprint(bibles: Sequence) -> str:
    """What the index is built from: this module's rules, Python, each translation's package."""
    from importlib.metadata import PackageNotFoundError, version

    from pythonbible.bible import BIBLE_PACKAGE_NAMES

    parts = [f"format={INDEX_FORMAT} run={RUN} common={COMMON_RUN_VERSES}",
             f"python={sys.version_info[0]}.{sys.version_info[1]}"]
    for translation, _ in bibles:
        package = BIBLE_PACKAGE_NAMES[translation]
        try:
            parts.append(f"{package}={version(package.replace('_', '-'))}")
        except PackageNotFoundError:
            parts.append(f"{package}=unknown")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def default_index() -> QuoteIndex:
    """The process's index over every installed translation: read from `cache_file()` when it
    was built from the same translations, else built (a few seconds) and written there. A file
    that cannot be read or written is ignored."""
    import torch

    bibles = translations()
    key, path = fingerprint(bibles), cache_file()
    if path is not None:
        try:
            saved = torch.load(path, weights_only=True)
            if saved.get("fingerprint") == key:
                return QuoteIndex.from_state(bibles, saved)
        except (OSError, RuntimeError, ValueError, KeyError, AttributeError,
                pickle.UnpicklingError):
            pass
    index = QuoteIndex(bibles)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False,
                                             suffix=".tmp") as handle:
                torch.save({"fingerprint": key, **index.state()}, handle)
            os.replace(handle.name, path)
        except OSError:
            pass
    return index
