"""Scripture references: parsed, validated and canonicalised by pythonbible."""

import pytest

from selah.scripture import canonical_reference, is_valid_reference, parse_references, verse_text


@pytest.mark.parametrize("raw, canonical", [
    ("Eph 5:3", "Ephesians 5:3"), ("Ephesians 5:3", "Ephesians 5:3"),
    ("Psalm 23:4", "Psalm 23:4"), ("Ps 42:11", "Psalm 42:11"),
    ("1 Cor 13:4-7", "1 Corinthians 13:4-7"),
    ("Phil 4:13", "Philippians 4:13"), ("Jude 3", "Jude 3"), ("Matt 5:21-22", "Matthew 5:21-22"),
])
def test_references_are_canonicalised(raw, canonical):
    assert canonical_reference(raw) == canonical


@pytest.mark.parametrize("raw", [
    "John 3:99", "Psalm 151:1", "Hezekiah 1:1", "2 John 1:20", "", "no verse",
])
def test_invalid_references_are_rejected(raw):
    assert canonical_reference(raw) is None
    assert not is_valid_reference(raw)


def test_one_string_may_hold_several_references():
    assert parse_references("Romans 3:23; John 3:16") == ("Romans 3:23", "John 3:16")


def test_verse_text_is_the_bundled_asv():
    assert verse_text("Psalm 23:4").startswith("Yea, though I walk through the valley")
    assert verse_text("Hezekiah 1:1") is None
