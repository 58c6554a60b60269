"""The verses shown for each theme and concern speak to it (`selah.scripture_topics`)."""

import re

import pytest

from selah import schema
from selah.scripture import canonical_reference, verse_text
from selah.scripture_topics import THEME_SCRIPTURE, TOPIC_WORDS, references_for


def test_every_catalogue_theme_has_verses_and_topic_words():
    assert set(THEME_SCRIPTURE) == set(schema.THEME_BY_NAME) == set(TOPIC_WORDS)
    assert all(len(references) >= 2 for references in THEME_SCRIPTURE.values())


@pytest.mark.parametrize("theme", sorted(THEME_SCRIPTURE))
def test_each_verse_is_valid_and_holds_one_of_its_themes_words(theme):
    for reference in THEME_SCRIPTURE[theme]:
        assert canonical_reference(reference) == reference
        text = (verse_text(reference) or "").lower()
        assert any(re.search(r"\b" + re.escape(word), text) for word in TOPIC_WORDS[theme]), (
            f"{reference} ({text[:80]}...) says nothing of {theme}")


def test_profanity_is_shown_verses_about_speech():
    """The issue's example: the label table showed Profanity Ephesians 5:3 (about sexual
    immorality)."""
    for reference in references_for("Profanity", {"Profanity": ["Ephesians 5:3"]}):
        assert re.search(r"\b(mouth|speech|speaking)\b", verse_text(reference).lower())


def test_a_theme_the_table_lacks_falls_back_to_the_checkpoints():
    assert references_for("A New Theme", {"A New Theme": ["John 1:1"]}) == ("John 1:1",)
    assert references_for("A New Theme", None) == ()
