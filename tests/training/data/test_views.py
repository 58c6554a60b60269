"""Augmented views: seeded, contiguous runs of a song's lines, with their provenance."""

import dataclasses

from selah import schema
from training.data.readers import Example
from training.data.views import MIN_LINES, SEPARATOR, parent_id, song_views, with_views

LINES = [f"line number {n} of a song about the long road home" for n in range(1, 21)]


def song(song_id: str = "s1", lines=LINES) -> Example:
    label = schema.Label(verdict="freely_listen", score=90)
    return Example(song_id, "Long Road", "Selah Fixture Choir", "\n\n".join(lines), label)


def test_a_view_is_a_contiguous_run_of_the_songs_lines_with_its_label():
    views = song_views(song(), 3, seed=0)
    assert len(views) == 3
    spans = set()
    for number, view in enumerate(views):
        kept = view.example.lyrics.splitlines()
        assert kept == LINES[view.first_line - 1:view.last_line]  # blank lines dropped
        assert 0.4 * len(LINES) - 1 <= len(kept) < len(LINES)
        assert view.example.song_id == f"s1{SEPARATOR}{number}" and view.parent == "s1"
        assert parent_id(view.example.song_id) == "s1"
        assert view.example.label == song().label and view.example.title == "Long Road"
        assert view.provenance() == {"view_of": "s1", "lines": [view.first_line, view.last_line]}
        spans.add((view.first_line, view.last_line))
    assert len(spans) == 3


def test_views_depend_on_the_song_and_seed_only():
    first = [v.example.lyrics for v in song_views(song(), 2, seed=0)]
    again = [v.example.lyrics for v in song_views(song(), 2, seed=0)]
    assert first == again
    assert first != [v.example.lyrics for v in song_views(song(), 2, seed=1)]
    assert first != [v.example.lyrics for v in song_views(song("s2"), 2, seed=0)]
    # one view more leaves the first ones as they were
    assert [v.example.lyrics for v in song_views(song(), 3, seed=0)][:2] == first


def test_short_songs_and_zero_count_have_no_views():
    assert song_views(song(lines=LINES[:MIN_LINES - 1]), 2) == []
    assert song_views(song(), 0) == []
    instrumental = dataclasses.replace(song(), lyrics="")
    assert song_views(instrumental, 2) == []


def test_with_views_keeps_the_songs_first():
    songs, views = with_views([song("a"), song("b")], 2)
    assert [e.song_id for e in songs[:2]] == ["a", "b"] and len(songs) == 6
    assert set(views) == {e.song_id for e in songs[2:]}
    assert parent_id("a") == "a"
