"""Scripture references: parsed, validated and canonicalised by `pythonbible`; verse text.

`pythonbible` knows every book's chapter and verse counts, so "John 3:99" or "Psalm 151:1" is
rejected rather than passed on. Canonical form is pythonbible's ("1 Corinthians 13:4-7",
"Ephesians 5:3"), except that a reference inside one psalm reads "Psalm 23:4", as the labels
and the contract's examples write it. Verse text is the American Standard Version (1901, public
domain) that ships with pythonbible.
"""

from functools import lru_cache

from selah.deps import require

# Longest verse text returned for a reference range, in characters.
MAX_TEXT_CHARS = 1000


def _bible():
    return require("pythonbible", "scripture references")


@lru_cache(maxsize=4096)
def parse_references(text: str) -> tuple[str, ...]:
    """Every valid reference found in `text`, canonical, in order; `()` when none is valid.

    A string may name several references ("Romans 3:23; John 3:16"); invalid chapters or verses
    make pythonbible drop that reference, and we double-check each one converts to verse ids.
    """
    bible = _bible()
    found = []
    for reference in bible.get_references(str(text)):
        try:
            verse_ids = bible.convert_reference_to_verse_ids(reference)
        except (IndexError, KeyError, ValueError, bible.InvalidVerseError,
                bible.InvalidChapterError, bible.InvalidBookError):
            continue
        if not verse_ids or not all(bible.is_valid_verse_id(v) for v in verse_ids):
            continue
        canonical = _format(bible, reference)
        if canonical not in found:
            found.append(canonical)
    return tuple(found)


def _format(bible, reference) -> str:
    text = bible.format_scripture_references([reference])
    one_chapter = reference.start_chapter == reference.end_chapter
    if text.startswith("Psalms ") and one_chapter and reference.end_book in (None, reference.book):
        return "Psalm " + text[len("Psalms "):]
    return text


def canonical_reference(text: str) -> str | None:
    """The canonical form of a single reference, or None when `text` holds no valid one."""
    found = parse_references(text)
    return found[0] if found else None


def is_valid_reference(text: str) -> bool:
    """True when `text` holds at least one valid reference."""
    return bool(parse_references(text))


@lru_cache(maxsize=1024)
def verse_text(reference: str) -> str | None:
    """The ASV text of a reference (verses joined by spaces, cut at MAX_TEXT_CHARS), or None."""
    bible = _bible()
    references = bible.get_references(str(reference))
    if not references:
        return None
    try:
        verse_ids = bible.convert_reference_to_verse_ids(references[0])
        parts = [bible.get_verse_text(v) for v in verse_ids]
    except Exception:  # noqa: BLE001 - any lookup failure means "no text", never a crash
        return None
    text = " ".join(part.strip() for part in parts if part)
    return text[:MAX_TEXT_CHARS] if text else None
