"""The legacy 4-model analyzer's rules (backends.md, section 1) as pure functions of model outputs.

`HuggingFaceAnalyzer` runs the four models; everything after them lives here, so the same outputs
always give the same result and every term can be tested without a model: the text cuts, the 33
keyword themes, the profanity flag, the 36 zero-shot labels and their points, the score
arithmetic, the concern level and the explanation.

Choices where the spec leaves room, each kept as close to the legacy behaviour as we could read it:

- Keywords and profanity are matched as substrings of the processed (lower-cased, cut) text, as
  the legacy did. The legacy's 27 profanity words were not recorded; `PROFANITY` is our list of
  common English profanity, slurs, sexual and drug words, picked so that none is a substring of an
  ordinary word in worship lyrics (no "hell", "damn", "ass", "meth", "crack", "stoned", "heroin"
  (heroine), "horny" (thorny)). Substring matching still has false positives ("shittim wood").
- The zero-shot cut applies to text over 1,260 characters, so the NLI premise never exceeds it.
- Sentiment and emotion terms use the primary (most probable) label and its probability.
- "The positive points" of the theological weighting are the raw points of the positive themes
  kept. The formational penalty applies when any of its four conditions holds (3+ themes of -15 or
  worse, negative sentiment > 0.8, anger/fear/disgust > 0.8, toxic) and no theme has positive
  points. With the single-label softmax over 36 labels at most 3 zero-shot themes exceed 0.3.
- `content_analysis.concern_level` is the legacy analyzer's own level (toxic -> high, then 90, 75,
  50); `scoring_results.quality_level` is the contract's (`base.quality_level`: 85, 70, 50).
- The v3.1 `framework` is derived, not predicted: the verdict is read off the score band, so
  `verdict_probabilities` is one-hot and `confidence` 1.0 (the legacy models have no calibrated
  verdict confidence) and `needs_review` is the band-edge rule alone; `formation_risk` comes from
  the penalty and the negative themes, `narrative_voice` is "artist" and no lament filter exists.
- Supporting scripture comes from `SCRIPTURE`, one reference per zero-shot theme chosen here.

Not reproduced: the web app's service layer then took 15 points off per regex-detected concern (at
most 45) and capped a song with any concern at 69. That is the app's layer, not the analyzer's.
"""

from dataclasses import dataclass

from selah import schema
from selah.analyzers.base import AnalysisResult, quality_level
from selah.analyzers.gptoss_render import (
    GUIDANCE,
    VERDICT_WORDS,
    _distribution,
    verse_text,
)

# (texts longer than this, are cut to this): the classifiers', then the zero-shot premise's.
CLASSIFIER_CUT = (1750, 1575)
ZERO_SHOT_CUT = (1260, 1260)
THEME_THRESHOLD = 0.3
TOXIC_THRESHOLD = 0.5
HYPOTHESIS = "This example is {}."
MAX_SCRIPTURE = 3
DETECTION = {"keyword": "keyword", "zero_shot": "zero_shot_nli"}

KEYWORDS = (
    "jesus", "christ", "god", "lord", "faith", "holy", "praise", "worship", "hallelujah", "amen",
    "blessed", "salvation", "heaven", "prayer", "bible", "savior", "grace", "mercy", "gospel",
    "church", "congregation", "divine", "almighty", "eternal", "sacred", "righteous", "shepherd",
    "resurrection", "crucifixion", "trinity", "apostle", "disciple", "angel",
)
PROFANITY = (
    # profanity
    "fuck", "shit", "bitch", "bastard", "asshole", "goddamn", "cunt", "dickhead",
    # slurs
    "nigger", "nigga", "faggot", "retard", "tranny",
    # sexual
    "pussy", "whore", "slut", "porn", "sexy", "blowjob", "orgasm", "threesome",
    # drugs
    "cocaine", "marijuana", "xanax", "percocet", "codeine", "fentanyl",
)


@dataclass(frozen=True)
class Candidate:
    """A zero-shot candidate label and the theme it stands for."""

    label: str
    theme: str
    points: int
    category: str


def _group(category: str, *entries: tuple) -> tuple[Candidate, ...]:
    # (label, points) keeps the label as the theme name; (label, theme, points) renames it.
    return tuple(Candidate(e[0], e[1] if len(e) == 3 else e[0], e[-1], category) for e in entries)


CANDIDATES = (
    _group("core_gospel", ("Christ-centered worship", "Christ-centered", 10),
           ("Gospel presentation", 10), ("Redemption and deliverance", "Redemption", 7),
           ("Sacrificial love", 6), ("Light versus darkness", "Light vs darkness", 5))
    + _group("character_spiritual", ("Perseverance and endurance", "Endurance", 6),
             ("Obedience to God", "Obedience", 5), ("Justice and righteousness", "Justice", 5),
             ("Identity in Christ", 5), ("Mercy and compassion", 4),
             ("Biblical truth and doctrine", 4), ("Victory in Christ", 4),
             ("Gratitude and thanksgiving", 4), ("Discipleship and following Jesus", 4),
             ("Evangelism and mission", 4), ("Worship and praise", 4), ("Faith and trust", 4),
             ("Hope in God", 4), ("Divine love", 4), ("Peace in Christ", 4),
             ("Prayer and communion", 4))
    + _group("negative", ("Blasphemy and mocking God", -30), ("Self-deification and pride", -25),
             ("Apostasy and faith rejection", -25), ("Suicide ideation and death wish", -25),
             ("Pride and arrogance", -20), ("Idolatry and false worship", -20),
             ("Occult practices and sorcery", -20), ("Sexual immorality and lust", -20),
             ("Glorification of violence", -20), ("Hatred and vengeance", -20),
             ("Materialism and greed", -15), ("Self-righteousness and works-based pride", -15),
             ("Moral confusion and relativism", -15),
             ("Vague spirituality without foundation", -10),
             ("Empty positivity and self-help", -10))
)
CANDIDATE_LABELS = tuple(c.label for c in CANDIDATES)
CANDIDATE_BY_LABEL = {c.label: c for c in CANDIDATES}

# One reference per zero-shot theme (canonical pythonbible form; tests check each one).
SCRIPTURE = {
    "Christ-centered": "Colossians 1:18", "Gospel presentation": "1 Corinthians 15:3-4",
    "Redemption": "Ephesians 1:7", "Sacrificial love": "John 15:13",
    "Light vs darkness": "John 1:5", "Endurance": "James 1:12", "Obedience": "John 14:15",
    "Justice": "Micah 6:8", "Identity in Christ": "2 Corinthians 5:17",
    "Mercy and compassion": "Lamentations 3:22-23",
    "Biblical truth and doctrine": "2 Timothy 3:16", "Victory in Christ": "1 Corinthians 15:57",
    "Gratitude and thanksgiving": "1 Thessalonians 5:18",
    "Discipleship and following Jesus": "Luke 9:23", "Evangelism and mission": "Matthew 28:19",
    "Worship and praise": "Psalm 95:6", "Faith and trust": "Proverbs 3:5",
    "Hope in God": "Romans 15:13", "Divine love": "1 John 4:16", "Peace in Christ": "John 14:27",
    "Prayer and communion": "Philippians 4:6", "Blasphemy and mocking God": "Exodus 20:7",
    "Self-deification and pride": "Genesis 3:5", "Apostasy and faith rejection": "Hebrews 3:12",
    "Suicide ideation and death wish": "Psalm 34:18", "Pride and arrogance": "Proverbs 16:18",
    "Idolatry and false worship": "1 John 5:21",
    "Occult practices and sorcery": "Deuteronomy 18:10-12",
    "Sexual immorality and lust": "Ephesians 5:3", "Glorification of violence": "Psalm 11:5",
    "Hatred and vengeance": "Romans 12:19", "Materialism and greed": "1 Timothy 6:10",
    "Self-righteousness and works-based pride": "Ephesians 2:8-9",
    "Moral confusion and relativism": "Isaiah 5:20",
    "Vague spirituality without foundation": "John 14:6",
    "Empty positivity and self-help": "Jeremiah 17:5",
}


# -- text -----------------------------------------------------------------------------------------

def cut(text: str, limit: int, target: int) -> str:
    """`text` if it has at most `limit` characters; else its first `target`, backed up to the last
    ". " (period kept) when that is past 70% of `target`, else to the last space past 80%."""
    if len(text) <= limit:
        return text
    head = text[:target]
    period = head.rfind(". ")
    if period > 0.7 * target:
        return head[:period + 1]
    space = head.rfind(" ")
    return head[:space] if space > 0.8 * target else head


def preprocess(title: str, artist: str, lyrics: str) -> str:
    """The classifiers' input: title, artist and lyrics lower-cased, stripped, cut to 1,575."""
    return cut(f"{title} {artist} {lyrics}".lower().strip(), *CLASSIFIER_CUT)


def zero_shot_text(processed: str) -> str:
    """The zero-shot premise: the processed text cut to 1,260 characters the same way."""
    return cut(processed, *ZERO_SHOT_CUT)


# -- detections -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelOutputs:
    """What the four models said about one song: label -> probability, in each model's order.
    `themes` holds the 36 candidate labels' softmax probabilities."""

    sentiment: dict
    emotion: dict
    safety: dict
    themes: dict


def primary(probabilities: dict) -> tuple[str, float]:
    """The most probable label and its probability (the first on a tie)."""
    label = max(probabilities, key=probabilities.get)
    return label, probabilities[label]


def is_toxic(safety: dict) -> bool:
    """True when any label with "toxic" in its name scores over 0.5."""
    return any(p > TOXIC_THRESHOLD for label, p in safety.items() if "toxic" in label)


def keyword_themes(text: str) -> list[dict]:
    """A `general_christian` theme for each keyword found in `text`, in keyword order."""
    return [{"theme": word, "score": 1.0, "category": "general_christian", "points": 0,
             "detection_method": DETECTION["keyword"]} for word in KEYWORDS if word in text]


def profanity_in(text: str) -> list[str]:
    """The profanity words found in `text`, in list order."""
    return [word for word in PROFANITY if word in text]


def concern_flags(found: list[str]) -> list[dict]:
    """The one `explicit_language` flag when any profanity word was found, else none."""
    if not found:
        return []
    return [{"type": "explicit_language", "category": "Profanity", "severity": "medium",
             "confidence": 0.9, "keywords": list(found),
             "description": "Explicit language detected: " + ", ".join(found[:3])}]


def zero_shot_themes(probabilities: dict) -> list[dict]:
    """Candidate labels over 0.3 as themes, most probable first (label order on a tie)."""
    kept = [(p, label) for label, p in probabilities.items()
            if p > THEME_THRESHOLD and label in CANDIDATE_BY_LABEL]
    order = {label: i for i, label in enumerate(CANDIDATE_LABELS)}
    themes = []
    for p, label in sorted(kept, key=lambda item: (-item[0], order[item[1]])):
        candidate = CANDIDATE_BY_LABEL[label]
        themes.append({"theme": candidate.theme, "score": round(p, 4),
                       "category": candidate.category, "points": candidate.points,
                       "detection_method": DETECTION["zero_shot"], "label": label})
    return themes


# -- score ----------------------------------------------------------------------------------------

def theme_term(theme: dict) -> float:
    """One theme's points: +1.5p (c > 0.8) or +pc; -|p| (c > 0.7) or -|p|c; a keyword +5c."""
    c, p = theme["score"], theme["points"]
    if theme["detection_method"] == DETECTION["keyword"]:
        return 5 * c
    if p > 0:
        return 1.5 * p if c > 0.8 else p * c
    return -abs(p) if c > 0.7 else -abs(p) * c


def theological_weighting(themes: list[dict]) -> float:
    """1.5 with a positive core_gospel theme, else 1.2 with a positive character_spiritual one."""
    categories = {t["category"] for t in themes if t["points"] > 0}
    return 1.5 if "core_gospel" in categories else 1.2 if "character_spiritual" in categories \
        else 1.0


def sentiment_term(sentiment: dict) -> float:
    """+5s for a positive primary sentiment, -8s for a negative one."""
    label, s = primary(sentiment)
    return 5 * s if label == "positive" else -8 * s if label == "negative" else 0.0


def emotion_term(emotion: dict) -> float:
    """+3s for a primary joy, -5s for a primary anger, fear or disgust."""
    label, s = primary(emotion)
    return 3 * s if label == "joy" else -5 * s if label in ("anger", "fear", "disgust") else 0.0


def formational_penalty(themes: list[dict], sentiment: dict, emotion: dict, toxic: bool) -> float:
    """10 when the song shows harm (3+ themes of -15 or worse, negative sentiment > 0.8, anger,
    fear or disgust > 0.8, or toxic) and has no positive theme; else 0."""
    severe = sum(1 for t in themes if t["points"] <= -15)
    harmful_emotion = max(emotion.get(e, 0.0) for e in ("anger", "fear", "disgust"))
    harm = severe >= 3 or sentiment.get("negative", 0.0) > 0.8 or harmful_emotion > 0.8 or toxic
    return 10.0 if harm and not any(t["points"] > 0 for t in themes) else 0.0


@dataclass(frozen=True)
class Score:
    """The final score and the terms it was built from."""

    final: float
    weighting: float
    penalty: float
    components: dict


def score(themes: list[dict], sentiment: dict, emotion: dict, toxic: bool, flags: int) -> Score:
    """Start at 100, add every term, clamp to 0-100 (rounded to 0.1)."""
    weighting = theological_weighting(themes)
    terms = {
        "base": 100.0,
        "keyword_themes": sum(theme_term(t) for t in themes
                              if t["detection_method"] == DETECTION["keyword"]),
        "zero_shot_themes": sum(theme_term(t) for t in themes
                                if t["detection_method"] != DETECTION["keyword"]),
        "theological_bonus": (weighting - 1) * sum(t["points"] for t in themes if t["points"] > 0),
        "sentiment": sentiment_term(sentiment),
        "emotion": emotion_term(emotion),
        "concern_flags": -3.0 * flags,
        "toxicity": -20.0 if toxic else 0.0,
        "formational_penalty": -formational_penalty(themes, sentiment, emotion, toxic),
    }
    raw = sum(terms.values())
    components = {name: round(value, 4) for name, value in terms.items()}
    components["raw_score"] = round(raw, 4)
    return Score(round(min(100.0, max(0.0, raw)), 1), weighting, -terms["formational_penalty"],
                 components)


def legacy_concern_level(final: float, toxic: bool) -> str:
    """The legacy analyzer's concern level: High when toxic, else by 90 / 75 / 50."""
    if toxic:
        return "High"
    return "Very Low" if final >= 90 else "Low" if final >= 75 else "Medium" if final >= 50 \
        else "High"


# -- words ----------------------------------------------------------------------------------------

def _degree(s: float) -> str:
    return "very " if s > 0.8 else "" if s > 0.6 else "slightly "


def _strength(s: float) -> str:
    return "strongly" if s > 0.7 else "moderately" if s > 0.4 else "slightly"


def explanation(themes: list[dict], found: list[str], sentiment: dict, emotion: dict,
                toxic: bool) -> str:
    """The legacy explanation: its parts joined by ". " (a neutral primary label says nothing)."""
    parts = []
    christian = [t["theme"] for t in themes if t["points"] >= 0]
    if christian:
        parts.append("Contains Christian themes: " + ", ".join(christian[:5]))
    if found:
        parts.append("Contains concerning language: " + ", ".join(found[:3]))
    label, s = primary(sentiment)
    if label != "neutral":
        parts.append(f"Overall sentiment: {_degree(s)}{label}")
    if toxic:
        parts.append("Content flagged as potentially inappropriate")
    label, s = primary(emotion)
    if label != "neutral":
        parts.append(f"Primary emotion: {_strength(s)} {label}")
    return ". ".join(parts or ["Standard content analysis completed"]) + "."


def scripture(themes: list[dict], limit: int = MAX_SCRIPTURE) -> list[dict]:
    """`{reference, text, theme}` for up to `limit` zero-shot themes, in theme order."""
    found = [(t["theme"], SCRIPTURE[t["theme"]]) for t in themes if t["theme"] in SCRIPTURE]
    return [{"reference": ref, "text": verse_text(ref), "theme": theme}
            for theme, ref in found[:limit]]


def framework(final: float, themes: list[dict], toxic: bool, flags: int, penalty: float) -> dict:
    """The v3.1 fields, derived from the score (see the module doc)."""
    verdict = schema.verdict_for_score(final)
    negative = any(t["points"] < 0 for t in themes)
    risk = "high" if penalty or verdict == "avoid_formation" else \
        "medium" if negative or toxic or flags else "low"
    return {"verdict": verdict, "recommendation": schema.PLAN_NAMES[verdict],
            "verdict_probabilities": {v: float(v == verdict) for v in schema.VERDICTS},
            "formation_risk": risk, "narrative_voice": "artist", "lament_filter_applied": False,
            "confidence": 1.0, "needs_review": schema.needs_review(final),
            "derived": "verdict read off the legacy score's band",
            # Its concern flags are profanity only; doctrine shows in the themes.
            "doctrinal_clarity": schema.doctrinal_clarity([t["theme"] for t in themes], []),
            "doctrinal_clarity_source": "derived from the detected themes"}


def render(title: str, artist: str, lyrics: str, user_id: int | None, outputs: ModelOutputs,
           snapshot: dict, processing_time: float) -> AnalysisResult:
    """The full contract result for one song from its four models' outputs."""
    text = preprocess(title, artist, lyrics)
    found = profanity_in(text)
    flags = concern_flags(found)
    toxic = is_toxic(outputs.safety)
    themes = keyword_themes(text) + zero_shot_themes(outputs.themes)
    result = score(themes, outputs.sentiment, outputs.emotion, toxic, len(flags))
    frame = framework(result.final, themes, toxic, len(flags), result.penalty)
    verdict, plan = frame["verdict"], frame["recommendation"]
    toxicity = max((p for label, p in outputs.safety.items() if "toxic" in label), default=0.0)
    level = legacy_concern_level(result.final, toxic)
    return AnalysisResult(
        title=title, artist=artist, lyrics_text=lyrics, processed_text=text,
        content_analysis={
            "concern_flags": flags,
            "safety_assessment": {"is_toxic": toxic, "toxicity": round(toxicity, 4),
                                  "concern_count": len(flags), "explicit_keywords": found,
                                  "highest_severity": flags[0]["severity"] if flags else None,
                                  "legacy_concern_level": level},
            "total_penalty": 3 * len(flags) + (20 if toxic else 0),
            "concern_level": level.lower().replace(" ", "_"),
        },
        biblical_analysis={"themes": themes, "supporting_scripture": scripture(themes),
                           "biblical_themes_count": len(themes)},
        model_analysis={
            "sentiment": _distribution(outputs.sentiment),
            "emotions": _distribution(outputs.emotion),
            "content_safety": {**_distribution(outputs.safety), "is_toxic": toxic},
            "zero_shot": _distribution(outputs.themes),
            "framework": frame,
        },
        scoring_results={
            "final_score": result.final,
            "explanation": explanation(themes, found, outputs.sentiment, outputs.emotion, toxic),
            "quality_level": quality_level(result.final),
            "component_scores": result.components,
            "verdict_summary": f"{plan}: {VERDICT_WORDS[verdict]} (score {result.final:.0f}).",
            "formation_guidance": f"{GUIDANCE[verdict]} Formation risk: {frame['formation_risk']}.",
            "theological_weighting": result.weighting,
            "formational_penalty": result.penalty,
        },
        processing_time=processing_time, user_id=user_id, configuration_snapshot=dict(snapshot),
    )
