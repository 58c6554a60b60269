"""Quoted and paraphrased scripture (`selah.quotes`) on songs the project wrote: the development
set the thresholds were set on and the confirmation set written apart from it."""

import json
from pathlib import Path

import pytest

from selah import quotes

FIXTURES = Path(__file__).parent / "fixtures"
SETS = ("quote_songs_dev.json", "quote_songs_test.json")


@pytest.fixture(scope="module")
def index():
    """The index over every installed translation (cached in this run's SELAH_QUOTE_CACHE)."""
    return quotes.default_index()


def songs(name: str, kind: str) -> list[dict]:
    """One set's songs of one kind (`quoting` or `no_quote`)."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))[kind]


def test_the_installed_translations_are_indexed(index):
    names = {version.name for version, _ in index.bibles}
    assert {"AMERICAN_STANDARD", "KING_JAMES", "WORLD_ENGLISH"} <= names
    assert len(index.verse_ids) > 31_000 and len(index.keys) == len(index.verses)
    assert bool((index.keys[1:] >= index.keys[:-1]).all())


@pytest.mark.parametrize("name", SETS)
def test_every_found_verse_is_one_the_song_quotes(index, name):
    """Precision 1 on both sets: nothing is named that the song does not quote."""
    for song in songs(name, "quoting"):
        expected = {ref for group in song["quotes"] for ref in group}
        found = [q.reference for q in index.find(song["lyrics"])]
        assert set(found) <= expected, (song["title"], found)


@pytest.mark.parametrize("name", SETS)
def test_every_close_quote_is_found_on_its_lines(index, name):
    """Recall on the songs whose quotes are close (not marked `missable`), with the lines."""
    for song in songs(name, "quoting"):
        if song.get("missable"):
            continue
        found = index.find(song["lyrics"])
        for group in song["quotes"]:
            hits = [q for q in found if q.reference in group]
            assert hits, (song["title"], group, [q.reference for q in found])
            lines = song["lyrics"].splitlines()
            for quote in hits:
                assert quote.lines and all(lines[n - 1].strip() for n in quote.lines)
                assert 0 < quote.match <= 1 and quote.words >= quotes.MIN_WORDS
                assert quote.translation in ("ASV", "KJV", "WEB")


@pytest.mark.parametrize("name", SETS)
def test_no_false_hits_on_songs_that_quote_nothing(index, name):
    for song in songs(name, "no_quote"):
        assert index.find(song["lyrics"]) == [], song["title"]


def test_a_quote_names_its_verse_text_and_every_line_it_is_sung_on(index):
    lyrics = ("Be still, and know that I am God\nThe city is loud\n"
              "Be still, and know that I am God")
    quote, = index.find(lyrics)
    assert quote.reference == "Psalm 46:10" and quote.lines == (1, 3)
    assert "know that I am God" in quote.text
    entry = quote.to_dict()
    assert entry["source"] == "quoted" and entry["lines"] == [1, 3]
    assert entry["theme"] == quotes.QUOTED_THEME


def test_common_phrases_are_not_scripture(index):
    for lyrics in ("I love you", "I love you all the days of my life",
                   "in the middle of the night", "Praise the Lord, hallelujah", ""):
        assert index.find(lyrics) == [], lyrics


def test_the_index_is_kept_on_disk_and_read_back(monkeypatch, tmp_path, index):
    import torch

    path = tmp_path / "quotes.pt"
    monkeypatch.setenv("SELAH_QUOTE_CACHE", str(path))
    torch.save({"fingerprint": quotes.fingerprint(index.bibles), **index.state()}, path)

    def build(self, bibles):
        raise AssertionError("the index was built instead of read")

    monkeypatch.setattr(quotes.QuoteIndex, "__init__", build)
    quotes.default_index.cache_clear()
    try:
        again = quotes.default_index()
        assert again.find("The Lord is my shepherd, I shall not want")[0].reference == "Psalm 23:1"
    finally:
        quotes.default_index.cache_clear()


def test_a_damaged_or_stale_cache_is_rebuilt_and_replaced(monkeypatch, tmp_path):
    path = tmp_path / "quotes.pt"
    monkeypatch.setenv("SELAH_QUOTE_CACHE", str(path))
    built = []
    monkeypatch.setattr(quotes, "QuoteIndex", lambda bibles: built.append(1) or _Tiny())
    monkeypatch.setattr(quotes, "translations", lambda: [])
    monkeypatch.setattr(quotes, "fingerprint", lambda bibles: "now")
    for content in (b"not a torch file", None):
        if content is not None:
            path.write_bytes(content)
        else:
            import torch

            torch.save({"fingerprint": "before", **_Tiny().state()}, path)
        quotes.default_index.cache_clear()
        try:
            quotes.default_index()
        finally:
            quotes.default_index.cache_clear()
    assert built == [1, 1]
    import torch

    assert torch.load(path, weights_only=True)["fingerprint"] == "now"


def test_an_empty_cache_setting_keeps_the_index_in_memory(monkeypatch, tmp_path):
    monkeypatch.setenv("SELAH_QUOTE_CACHE", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert quotes.cache_file() is None


class _Tiny:
    def state(self):
        import torch

        return {"verse_ids": [], "vocab": {}, "idf": {}, "max_idf": 0.0,
                "keys": torch.zeros(0, dtype=torch.int64), "verses": torch.zeros(0)}
