"""Lyrics and verses read as the same words, for `selah.quotes`.

Lower case; contractions opened ("I'll" -> "i will", "won't" -> "will not"); the archaic forms of
the older translations read as modern ones ("thy" -> "your", "hath" -> "has", "Jehovah" and
"Yahweh" -> "lord", "for ever" -> "forever"); a light suffix stem ("leadeth", "leads" -> "lead";
"goes", "goeth" -> "go"). So a lyric in today's English meets the KJV's or the ASV's wording of
the same verse. A change here changes the index: bump `selah.quotes.INDEX_FORMAT`.
"""

import functools
import re

ARCHAIC = {
    "thee": "you", "thou": "you", "ye": "you", "thy": "your", "thine": "your", "art": "are",
    "hast": "have", "hath": "has", "doth": "does", "dost": "do", "shalt": "shall",
    "wilt": "will", "unto": "to", "jehovah": "lord", "yahweh": "lord", "oh": "o",
    "saith": "says", "spake": "spoke", "whosoever": "whoever", "yea": "yes",
}
CONTRACTIONS = {"ll": "will", "re": "are", "ve": "have", "m": "am", "d": "would"}
NEGATIONS = {"won": "will", "can": "can", "don": "do", "ain": "am", "shan": "shall"}
# Suffixes stripped, and the shortest stem each leaves ("goes", "goeth" -> "go"; "is" stays).
SUFFIXES = (("eth", 2), ("est", 3), ("es", 2), ("ed", 3), ("s", 3))
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


@functools.lru_cache(maxsize=65536)
def _word(token: str) -> tuple[str, ...]:
    """One raw lower-case token as normalised words (a contraction gives two)."""
    if "'" in token:
        head, tail = token.split("'", 1)
        if tail == "t" and head.endswith("n"):
            return (NEGATIONS.get(head, head[:-1]), "not")
        if tail in CONTRACTIONS:
            return (*_word(head), CONTRACTIONS[tail])
        token = head
    token = ARCHAIC.get(token, token)
    for suffix, shortest in SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= shortest:
            return (token[:-len(suffix)],)
    return (token,)


def words(text: str) -> list[str]:
    """The normalised words of a text, in order."""
    text = text.lower().replace("\u2019", "'").replace("for ever", "forever")
    return [w for token in _WORD.findall(text) for w in _word(token)]
