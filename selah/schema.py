"""The one label schema of the project: verdicts, score bands, themes, concerns and signal labels.

Pure standard library on purpose: the service (`app`) may import it to read and check model output
without importing the training stack. Everything here is a constant or a small pure function.

The theme catalogue is fixed. Every theme name the labelled data uses (157 spellings in
`../shared/data/songs.jsonl`, see `docs/data.md`) folds onto one entry through `THEME_ALIASES`;
a catalogue entry's points are the median of the raw points of every spelling folded onto it in
that file. Concerns use the negative part of the same catalogue (`CONCERN_CATEGORIES`).
"""

import re
import unicodedata
from dataclasses import dataclass

SCHEMA_VERSION = "selah-labels-1"
# A multilabel head (themes, concerns) names an item at or above this probability.
MULTILABEL_THRESHOLD = 0.5

# Verdict tiers, best first, and the plan's names for the same four things (contract section 2).
VERDICTS = ("freely_listen", "context_required", "caution_limit", "avoid_formation")
PLAN_NAMES = {
    "freely_listen": "RECOMMENDED",
    "context_required": "ACCEPTABLE",
    "caution_limit": "CONCERNING",
    "avoid_formation": "NOT_RECOMMENDED",
}
VERDICT_ALIASES = {plan: verdict for verdict, plan in PLAN_NAMES.items()}

# Score bands of the labelled data: (lowest score, verdict), highest band first.
SCORE_BANDS = ((85, "freely_listen"), (60, "context_required"), (40, "caution_limit"),
               (0, "avoid_formation"))
BAND_EDGES = (40, 60, 85)
# `needs_review` is true within this many points of a band edge (contract section 2).
REVIEW_MARGIN = 3

THEME_CATEGORIES = ("core_gospel", "character_spiritual", "negative", "general_christian")
SEVERITIES = ("low", "medium", "high", "critical")
SEVERITY_ALIASES = {"minor": "low", "moderate": "medium", "severe": "high", "extreme": "critical"}
SENTIMENT_LABELS = ("negative", "neutral", "positive")
EMOTION_LABELS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
SAFETY_LABELS = ("non_toxic", "toxic")
FORMATION_RISKS = ("low", "medium", "high")
NARRATIVE_VOICES = ("artist", "collective", "character", "God")


@dataclass(frozen=True)
class Theme:
    """A catalogue theme: canonical name, category and points (negative for negative themes)."""

    name: str
    category: str
    points: int


THEMES = (
    Theme("Gospel Message", "core_gospel", 10),
    Theme("Worship & Adoration", "core_gospel", 10),
    Theme("God's Love & Grace", "core_gospel", 9),
    Theme("Redemption Story", "core_gospel", 7),
    Theme("God's Sovereignty", "core_gospel", 7),
    Theme("Victory in Christ", "core_gospel", 7),
    Theme("Faith & Trust", "character_spiritual", 8),
    Theme("Hope & Encouragement", "character_spiritual", 6),
    Theme("Prayer & Intimacy", "character_spiritual", 7),
    Theme("Love for Others", "character_spiritual", 5),
    Theme("Perseverance & Endurance", "character_spiritual", 5),
    Theme("Gratitude & Thanksgiving", "character_spiritual", 5),
    Theme("Courage & Boldness", "character_spiritual", 1),
    Theme("Holiness & Righteousness", "character_spiritual", 6),
    Theme("Repentance & Humility", "character_spiritual", 5),
    Theme("Self-Control & Discipline", "character_spiritual", 1),
    Theme("Wisdom & Discernment", "character_spiritual", 4),
    Theme("Justice & Compassion", "character_spiritual", 2),
    Theme("Peace & Rest", "character_spiritual", 2),
    Theme("Lament & Grief", "character_spiritual", 2),
    Theme("Community & Fellowship", "general_christian", 3),
    Theme("Joy & Celebration", "general_christian", 2),
    Theme("Family & Covenant", "general_christian", 1),
    Theme("Creation & Wonder", "general_christian", 4),
    Theme("Scripture References", "general_christian", 8),
    Theme("Self-Reflection", "general_christian", 4),
    Theme("Personal Growth", "general_christian", 4),
    Theme("Self-Acceptance", "general_christian", 4),
    Theme("Spiritual Seeking", "general_christian", 4),
    Theme("Vague Spirituality", "negative", -5),
    Theme("Idolatry", "negative", -20),
    Theme("Humanistic Philosophy", "negative", -7),
    Theme("Sexual Immorality", "negative", -20),
    Theme("Trivializing Sin", "negative", -8),
    Theme("Profanity", "negative", -15),
    Theme("Violence/Revenge", "negative", -12),
    Theme("Substance Abuse", "negative", -10),
    Theme("Pride/Arrogance", "negative", -10),
    Theme("Greed/Materialism", "negative", -10),
    Theme("Theological Error", "negative", -8),
    Theme("Deception/Manipulation", "negative", -10),
    Theme("Despair", "negative", -10),
    Theme("Anxiety/Fear without Hope", "negative", -5),
    Theme("Occult/Witchcraft", "negative", -15),
    Theme("Anger/Bitterness", "negative", -3),
    Theme("Blasphemy", "negative", -30),
    Theme("Apostasy", "negative", -25),
    Theme("Suicidal Ideation", "negative", -20),
)
THEME_BY_NAME = {theme.name: theme for theme in THEMES}
THEME_NAMES = tuple(theme.name for theme in THEMES)
CONCERN_CATEGORIES = tuple(theme.name for theme in THEMES if theme.category == "negative")

# Every raw theme spelling of the labelled data that is not a catalogue name, and the entry it folds
# onto (lookup ignores case, curly apostrophes and "and" for "&"). Polarity is kept: a positive
# spelling never folds onto a negative entry, or the other way round.
THEME_ALIASES = {
    "Amazing Grace": "God's Love & Grace", "Grace": "God's Love & Grace",
    "Grace's Beauty": "God's Love & Grace", "Love's Freedom": "God's Love & Grace",
    "Evangelism & Mission": "Gospel Message", "Salvation": "Gospel Message",
    "God's Greatness": "Worship & Adoration", "God's Goodness": "Worship & Adoration",
    "Praise & Worship": "Worship & Adoration", "Worship": "Worship & Adoration",
    "Freedom": "Redemption Story", "Identity in Christ": "Redemption Story",
    "Awakening & Renewal": "Redemption Story", "Revival": "Redemption Story",
    "Forgiveness": "Redemption Story", "Redemption": "Redemption Story",
    "Kingdom Focus": "God's Sovereignty", "Judgment Day": "God's Sovereignty",
    "Spiritual Warfare": "Victory in Christ", "Resurrection Power": "Victory in Christ",
    "Commitment": "Faith & Trust", "Surrender & Commitment": "Faith & Trust",
    "Faithfulness": "Faith & Trust", "Obedience & Submission": "Faith & Trust",
    "Faith": "Faith & Trust",
    "Encouragement": "Hope & Encouragement", "Healing": "Hope & Encouragement",
    "Encouragement to Live Fully": "Hope & Encouragement", "Hope": "Hope & Encouragement",
    "Friendship with God": "Prayer & Intimacy", "Desire for God": "Prayer & Intimacy",
    "Prayer": "Prayer & Intimacy",
    "Love": "Love for Others", "Service & Sacrifice": "Love for Others",
    "Desire for Love": "Love for Others", "Tenderness": "Love for Others",
    "Kindness": "Love for Others",
    "Perseverance": "Perseverance & Endurance", "Determination": "Perseverance & Endurance",
    "Gratitude": "Gratitude & Thanksgiving", "Contentment": "Gratitude & Thanksgiving",
    "Appreciation of Moments": "Gratitude & Thanksgiving",
    "Integrity & Honesty": "Holiness & Righteousness",
    "Humanity & Humility": "Repentance & Humility", "Humility": "Repentance & Humility",
    "Humility & Meekness": "Repentance & Humility",
    "Compassion": "Justice & Compassion",
    "Rest for the Weary": "Peace & Rest", "Wholeness": "Peace & Rest", "Peace": "Peace & Rest",
    "Friendship & Community": "Community & Fellowship", "Unity": "Community & Fellowship",
    "Longing for Connection": "Community & Fellowship",
    "Beauty in Diversity": "Community & Fellowship", "Friendship": "Community & Fellowship",
    "Pursuit of Happiness": "Joy & Celebration", "Happiness": "Joy & Celebration",
    "Joy": "Joy & Celebration",
    "Fatherhood": "Family & Covenant", "Holy Matrimony": "Family & Covenant",
    "Goodness in Everything": "Creation & Wonder", "Beauty": "Creation & Wonder",
    "Design & Purpose": "Creation & Wonder",
    "Life & Existence": "Self-Reflection", "Regret & Reflection": "Self-Reflection",
    "Authenticity": "Self-Reflection", "Honesty & Vulnerability": "Self-Reflection",
    "Reflection on Life": "Self-Reflection",
    "Self-Discovery": "Personal Growth", "Desire for Change": "Personal Growth",
    "Success & Achievement": "Personal Growth", "Dreams & Aspirations": "Personal Growth",
    "Empowerment": "Self-Acceptance", "Self-Love": "Self-Acceptance",
    "Self-Worth": "Self-Acceptance",
    "Spirituality": "Spiritual Seeking", "Seeking Truth": "Spiritual Seeking",
    "Spiritual Longing": "Spiritual Seeking", "Searching for Truth": "Spiritual Seeking",
    "Self-Reliance": "Humanistic Philosophy", "Worldliness": "Humanistic Philosophy",
    "Misogyny/Objectification": "Sexual Immorality", "Infidelity": "Sexual Immorality",
    "Laziness": "Trivializing Sin", "Lack of Self-Control": "Trivializing Sin",
    "Trivializing Life": "Trivializing Sin",
    "Vengeance": "Violence/Revenge", "Revenge": "Violence/Revenge",
    "Selfishness": "Pride/Arrogance",
    "Materialism": "Greed/Materialism",
    "Evolution": "Theological Error",
    "Loss": "Despair", "Regret": "Despair", "Brokenness": "Despair", "Self-Blame": "Despair",
    "Oblivion": "Despair", "Mental Health Struggles": "Despair", "Confusion": "Despair",
    "Negativity": "Despair", "Isolation": "Despair", "Death": "Despair", "Pessimism": "Despair",
    "Emotional Turmoil": "Despair", "Broken Relationships": "Despair", "Hopelessness": "Despair",
    "Insecurity": "Anxiety/Fear without Hope", "Fear": "Anxiety/Fear without Hope",
    "Fear without Hope": "Anxiety/Fear without Hope",
    "Fear of Death": "Anxiety/Fear without Hope",
    "Occult": "Occult/Witchcraft",
    "Bitterness": "Anger/Bitterness", "Anger": "Anger/Bitterness",
    "Mean-spiritedness": "Anger/Bitterness", "Resentment": "Anger/Bitterness",
    "Jealousy": "Anger/Bitterness",
    "Self-Destruction": "Suicidal Ideation", "Suicide": "Suicidal Ideation",
}

# Every raw concern category of the labelled data that is not a catalogue name (32 raw, 19 kept).
CONCERN_ALIASES = {
    "Occult": "Occult/Witchcraft", "Bitterness": "Anger/Bitterness", "Anger": "Anger/Bitterness",
    "Worldliness": "Humanistic Philosophy", "Misogyny/Objectification": "Sexual Immorality",
    "Laziness": "Trivializing Sin", "Selfishness": "Pride/Arrogance",
    "Fear without Hope": "Anxiety/Fear without Hope", "Fear": "Anxiety/Fear without Hope",
    "Hopelessness": "Despair", "Mental Health Struggles": "Despair", "Pessimism": "Despair",
    "Suicide": "Suicidal Ideation",
}


def _key(name: str) -> str:
    """Lookup key of a name: NFKC, straight apostrophes, '&' for 'and', casefolded, one space."""
    text = unicodedata.normalize("NFKC", name).replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"\s+and\s+", " & ", text, flags=re.IGNORECASE)
    text = re.sub(r"\s*/\s*", "/", text)
    return " ".join(text.casefold().split())


_THEME_LOOKUP = {_key(alias): target for alias, target in THEME_ALIASES.items()}
_THEME_LOOKUP.update({_key(name): name for name in THEME_NAMES})
_CONCERN_LOOKUP = {_key(alias): target for alias, target in CONCERN_ALIASES.items()}
_CONCERN_LOOKUP.update({_key(name): name for name in CONCERN_CATEGORIES})


def fold_theme(name: str) -> Theme | None:
    """The catalogue theme a raw theme name folds onto, or None when it is unknown."""
    target = _THEME_LOOKUP.get(_key(name))
    return THEME_BY_NAME[target] if target else None


def fold_concern(category: str) -> str | None:
    """The catalogue concern category a raw category folds onto, or None when it is unknown."""
    return _CONCERN_LOOKUP.get(_key(category))


def canonical_verdict(value: str) -> str:
    """The verdict tier for a tier name or plan name in any case; ValueError when unknown."""
    text = str(value).strip()
    lowered = text.lower().replace("-", "_").replace(" ", "_")
    if lowered in VERDICTS:
        return lowered
    plan = VERDICT_ALIASES.get(lowered.upper())
    if plan is None:
        valid = ", ".join(VERDICTS + tuple(VERDICT_ALIASES))
        raise ValueError(f"unknown verdict {value!r}; valid: {valid}")
    return plan


def score_band(verdict: str) -> tuple[int, int]:
    """(lowest, highest) integer score of a verdict's band: context_required -> (60, 84)."""
    ceiling = 100
    for lowest, name in SCORE_BANDS:
        if name == verdict:
            return lowest, ceiling
        ceiling = lowest - 1
    raise ValueError(f"unknown verdict {verdict!r}")


def verdict_for_score(score: float) -> str:
    """The verdict whose score band holds `score` (85-100, 60-84, 40-59, 0-39)."""
    for lowest, verdict in SCORE_BANDS:
        if score >= lowest:
            return verdict
    return SCORE_BANDS[-1][1]


DOCTRINAL_CLARITIES = ("clear", "mixed", "unclear", "none")
# Concerns about what a song teaches of God (as against conduct: profanity, violence...).
DOCTRINAL_ERRORS = frozenset({"Theological Error", "Vague Spirituality", "Humanistic Philosophy",
                              "Idolatry", "Occult/Witchcraft", "Blasphemy", "Apostasy"})
# Themes that state doctrine: the gospel's core and the song quoting scripture.
DOCTRINAL_THEMES = frozenset(theme.name for theme in THEMES if theme.category == "core_gospel"
                             ) | {"Scripture References"}


def doctrinal_clarity(themes: list[str], concerns: list[str]) -> str:
    """`clear`, `mixed`, `unclear` or `none`, derived from detected theme and concern names.

    No data set labels this field, so no model predicts it: it is read off what was detected.
    clear: doctrine stated (a core-gospel theme or quoted scripture) and no doctrinal error;
    mixed: doctrine stated beside a doctrinal error; unclear: spiritual content without stated
    doctrine, or a doctrinal error alone; none: neither (a song with no spiritual content).
    """
    stated = any(name in DOCTRINAL_THEMES for name in themes)
    errors = any(name in DOCTRINAL_ERRORS for name in [*themes, *concerns])
    if stated:
        return "mixed" if errors else "clear"
    spiritual = any(THEME_BY_NAME[name].category != "negative" for name in themes
                    if name in THEME_BY_NAME)
    return "unclear" if errors or spiritual else "none"


def needs_review(score: float, confidence: float | None = None, threshold: float = 0.6) -> bool:
    """True within REVIEW_MARGIN points of a band edge, or when verdict confidence is low."""
    near_edge = any(abs(score - edge) <= REVIEW_MARGIN for edge in BAND_EDGES)
    return near_edge or (confidence is not None and confidence < threshold)


_THEME_RE = re.compile(
    r"^\s*(?P<name>.+?)\s*\(\s*(?P<points>[+-]?\d+)\s*(?:pts?|points?)?\s*\)\s*$")
_CONCERN_RE = re.compile(r"^\s*(?P<category>.+?)\s*\(\s*(?P<severity>[A-Za-z]+)\s*\)\s*$")


def parse_theme_string(text: str) -> tuple[str, int | None]:
    """`"Faith & Trust (+8)"` -> `("Faith & Trust", 8)`; a bare name gives `(name, None)`."""
    match = _THEME_RE.match(text)
    if match:
        return match.group("name"), int(match.group("points"))
    return text.strip(), None


def parse_concern_string(text: str) -> tuple[str, str | None]:
    """`"Idolatry (high)"` -> `("Idolatry", "high")`; a bare name gives `(name, None)`."""
    match = _CONCERN_RE.match(text)
    if match:
        return match.group("category"), match.group("severity")
    return text.strip(), None


def canonical_severity(value: str) -> str | None:
    """A severity in SEVERITIES (case and the SEVERITY_ALIASES folded), or None when unknown."""
    lowered = str(value).strip().lower()
    if lowered in SEVERITIES:
        return lowered
    return SEVERITY_ALIASES.get(lowered)


@dataclass(frozen=True)
class Label:
    """One song's normalised label: every field in the schema's vocabulary.

    `themes` are catalogue names (their category and points come from the catalogue), `concerns`
    are `(category, severity)` pairs, `scripture_references` canonical references.
    """

    score: int
    verdict: str
    formation_risk: str | None = None
    narrative_voice: str | None = None
    lament_filter_applied: bool | None = None
    themes: tuple[str, ...] = ()
    concerns: tuple[tuple[str, str], ...] = ()
    scripture_references: tuple[str, ...] = ()
    analysis: str = ""

    def to_dict(self) -> dict:
        """The label as JSON-ready dict, keys in a fixed order (the model's target)."""
        return {
            "verdict": self.verdict,
            "score": self.score,
            "formation_risk": self.formation_risk,
            "narrative_voice": self.narrative_voice,
            "lament_filter_applied": self.lament_filter_applied,
            "themes": [
                {"theme": name, "category": THEME_BY_NAME[name].category,
                 "points": THEME_BY_NAME[name].points}
                for name in self.themes
            ],
            "concerns": [{"category": c, "severity": s} for c, s in self.concerns],
            "scripture_references": list(self.scripture_references),
            "analysis": self.analysis,
        }
