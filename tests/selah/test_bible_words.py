"""Lyrics and verses read as the same words (`selah.bible_words`)."""

import pytest

from selah.bible_words import words


@pytest.mark.parametrize("text, expected", [
    ("Thy rod and thy staff, they comfort me", "your rod and your staff they comfort me"),
    ("He leadeth me; she leads me", "he lead me she lead me"),
    ("I'll love Thee for ever, won't you?", "i will love you forever will not you"),
    ("Jehovah is my shepherd; Yahweh reigns", "lord is my shepherd lord reign"),
    ("It\u2019s done", "it done"),
    ("when the sun goes down, as he goeth", "when the sun go down as he go"),
])
def test_both_sides_read_as_the_same_words(text, expected):
    assert " ".join(words(text)) == expected
