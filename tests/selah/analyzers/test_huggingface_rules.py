"""The legacy 4-model rules on fixed model outputs: cuts, keywords, every score term, the
formational penalty, clamping, concern levels, explanations and the rendered result."""

import pytest

from selah import schema
from selah.analyzers import huggingface_rules as rules
from selah.scripture import canonical_reference
from tests.selah.analyzers.test_base import READ_KEYS

SAFE = {"toxic": 0.01, "severe_toxic": 0.0, "obscene": 0.0, "threat": 0.0, "insult": 0.0,
        "identity_hate": 0.0}


def dist(labels, label: str | None = None, p: float = 1.0) -> dict:
    """A distribution over `labels`: `label` gets `p`, the others share the rest."""
    if label is None:
        return {name: 1 / len(labels) for name in labels}
    rest = (1 - p) / (len(labels) - 1)
    return {name: p if name == label else rest for name in labels}


def sentiment(label="neutral", p=1.0):
    return dist(schema.SENTIMENT_LABELS, label, p)


def emotion(label="neutral", p=1.0):
    return dist(schema.EMOTION_LABELS, label, p)


def zero_shot(**kept) -> dict:
    """The 36 candidate probabilities: `kept` {label: p}, the rest share what is left evenly."""
    labels = {rules.CANDIDATE_LABELS[int(k[1:])]: p for k, p in kept.items()}
    rest = (1 - sum(labels.values())) / (len(rules.CANDIDATE_LABELS) - len(labels))
    return {label: labels.get(label, rest) for label in rules.CANDIDATE_LABELS}


def theme(points: int, c: float, category: str = "character_spiritual", method="zero_shot_nli"):
    return {"theme": "t", "score": c, "points": points, "category": category,
            "detection_method": method}


KEYWORD = theme(0, 1.0, "general_christian", "keyword")


# -- text -----------------------------------------------------------------------------------------

def _text(period_at: int | None, space_at: int | None, length: int) -> str:
    chars = ["x"] * length
    for at, mark in ((period_at, ". "), (space_at, " ")):
        if at is not None:
            chars[at:at + len(mark)] = mark
    return "".join(chars)


@pytest.mark.parametrize("text, limit, target, expected_length", [
    (_text(None, None, 1750), 1750, 1575, 1750),       # at the limit: untouched
    (_text(1200, None, 1751), 1750, 1575, 1201),       # ". " past 70% of 1575: keep the period
    (_text(1000, 1300, 1800), 1750, 1575, 1300),       # period too early, space past 80%
    (_text(1000, 1200, 1800), 1750, 1575, 1575),       # both too early: the hard cut
    (_text(1200, None, 1576), 1750, 1575, 1576),       # over the cut, under the limit: untouched
    (_text(None, None, 1260), 1260, 1260, 1260),       # zero-shot: at its limit
    (_text(900, None, 1261), 1260, 1260, 901),         # zero-shot: ". " past 70% of 1260
    (_text(800, 1100, 1261), 1260, 1260, 1100),        # zero-shot: space past 80% (1008)
])
def test_cut(text, limit, target, expected_length):
    assert len(rules.cut(text, limit, target)) == expected_length


def test_preprocess_lowers_joins_strips_and_cuts():
    assert rules.preprocess("Holy Night", "The Band", "  Sing ALOUD  ") == \
        "holy night the band   sing aloud"
    long = rules.preprocess("T", "A", "word " * 1000)
    assert len(long) <= 1575 and not long.endswith(" ")
    assert len(rules.zero_shot_text(long)) <= 1260


# -- detections -----------------------------------------------------------------------------------

def test_the_lists_have_the_legacy_sizes():
    assert len(rules.KEYWORDS) == 33 and len(set(rules.KEYWORDS)) == 33
    assert len(rules.PROFANITY) == 27 and len(set(rules.PROFANITY)) == 27
    assert len(rules.CANDIDATES) == 36 and len(set(rules.CANDIDATE_LABELS)) == 36
    counts = {c: sum(x.category == c for x in rules.CANDIDATES)
              for c in ("core_gospel", "character_spiritual", "negative")}
    assert counts == {"core_gospel": 5, "character_spiritual": 16, "negative": 15}


@pytest.mark.parametrize("text, found", [
    ("jesus is lord", ["jesus", "lord"]),
    ("a godly angelic choir", ["god", "angel"]),   # substrings, as the legacy matched
    ("the rain keeps falling", []),
])
def test_keyword_themes(text, found):
    themes = rules.keyword_themes(text)
    assert [t["theme"] for t in themes] == found
    assert all(t == {"theme": t["theme"], "score": 1.0, "category": "general_christian",
                     "points": 0, "detection_method": "keyword"} for t in themes)


@pytest.mark.parametrize("text, found", [
    ("the shitty fucking porn", ["fuck", "shit", "porn"]),
    ("a class of grass in the hello shell", []),   # no ass, hell or the like
    ("thorny crown, my heroine, damnation", []),
])
def test_profanity_gives_one_flag(text, found):
    assert rules.profanity_in(text) == found
    flags = rules.concern_flags(found)
    assert len(flags) == (1 if found else 0)
    for flag in flags:
        assert {"type", "category", "severity", "confidence", "description"} <= set(flag)
        assert flag["type"] == "explicit_language" and flag["confidence"] == 0.9
        assert flag["severity"] in schema.SEVERITIES and flag["keywords"] == found


@pytest.mark.parametrize("label, theme, points, category", [
    ("Christ-centered worship", "Christ-centered", 10, "core_gospel"),
    ("Gospel presentation", "Gospel presentation", 10, "core_gospel"),
    ("Redemption and deliverance", "Redemption", 7, "core_gospel"),
    ("Light versus darkness", "Light vs darkness", 5, "core_gospel"),
    ("Perseverance and endurance", "Endurance", 6, "character_spiritual"),
    ("Justice and righteousness", "Justice", 5, "character_spiritual"),
    ("Prayer and communion", "Prayer and communion", 4, "character_spiritual"),
    ("Blasphemy and mocking God", "Blasphemy and mocking God", -30, "negative"),
    ("Suicide ideation and death wish", "Suicide ideation and death wish", -25, "negative"),
    ("Hatred and vengeance", "Hatred and vengeance", -20, "negative"),
    ("Moral confusion and relativism", "Moral confusion and relativism", -15, "negative"),
    ("Empty positivity and self-help", "Empty positivity and self-help", -10, "negative"),
])
def test_zero_shot_candidates(label, theme, points, category):
    (found,) = rules.zero_shot_themes(zero_shot(**{f"l{rules.CANDIDATE_LABELS.index(label)}": 0.9}))
    assert (found["theme"], found["points"], found["category"]) == (theme, points, category)
    assert found["detection_method"] == "zero_shot_nli" and found["score"] == 0.9


def test_zero_shot_keeps_labels_over_0_3_most_probable_first():
    themes = rules.zero_shot_themes(zero_shot(l0=0.31, l5=0.45, l35=0.3))
    assert [t["label"] for t in themes] == [rules.CANDIDATE_LABELS[5], rules.CANDIDATE_LABELS[0]]


@pytest.mark.parametrize("safety, toxic", [
    ({**SAFE, "toxic": 0.6}, True), ({**SAFE, "severe_toxic": 0.51}, True),
    ({**SAFE, "toxic": 0.5}, False), ({**SAFE, "obscene": 0.99, "insult": 0.9}, False),
])
def test_toxic_when_a_toxic_label_is_over_half(safety, toxic):
    assert rules.is_toxic(safety) is toxic


# -- score terms ----------------------------------------------------------------------------------

@pytest.mark.parametrize("item, term", [
    (theme(10, 0.9), 15.0), (theme(10, 0.8), 8.0), (theme(10, 0.5), 5.0),
    (theme(-20, 0.75), -20.0), (theme(-20, 0.7), -14.0), (theme(-30, 0.5), -15.0),
    (KEYWORD, 5.0),
])
def test_theme_term(item, term):
    assert rules.theme_term(item) == pytest.approx(term)


@pytest.mark.parametrize("themes, weighting", [
    ([theme(10, 0.9, "core_gospel"), theme(4, 0.4)], 1.5),
    ([theme(4, 0.4)], 1.2),
    ([KEYWORD, theme(-20, 0.9, "negative")], 1.0),
    ([], 1.0),
])
def test_theological_weighting(themes, weighting):
    assert rules.theological_weighting(themes) == weighting


@pytest.mark.parametrize("probabilities, term", [
    (sentiment("positive", 0.9), 4.5), (sentiment("negative", 0.9), -7.2),
    (sentiment("neutral", 0.9), 0.0),
])
def test_sentiment_term(probabilities, term):
    assert rules.sentiment_term(probabilities) == pytest.approx(term)


@pytest.mark.parametrize("probabilities, term", [
    (emotion("joy", 0.8), 2.4), (emotion("anger", 0.6), -3.0), (emotion("fear", 0.5), -2.5),
    (emotion("disgust", 1.0), -5.0), (emotion("sadness", 0.9), 0.0), (emotion(), 0.0),
])
def test_emotion_term(probabilities, term):
    assert rules.emotion_term(probabilities) == pytest.approx(term)


SEVERE = [theme(-30, 0.34, "negative"), theme(-25, 0.33, "negative"), theme(-15, 0.33, "negative")]


@pytest.mark.parametrize("themes, sent, emo, toxic, penalty", [
    (SEVERE, sentiment(), emotion(), False, 10.0),                     # 3 themes of -15 or worse
    (SEVERE[:2] + [theme(-10, 0.33, "negative")], sentiment(), emotion(), False, 0.0),
    ([], sentiment("negative", 0.81), emotion(), False, 10.0),
    ([], sentiment("negative", 0.8), emotion(), False, 0.0),
    ([], sentiment(), emotion("fear", 0.9), False, 10.0),
    ([], sentiment(), emotion(), True, 10.0),
    ([KEYWORD], sentiment(), emotion(), True, 10.0),                   # keywords carry no points
    ([theme(4, 0.4)], sentiment("negative", 0.95), emotion("anger", 0.95), True, 0.0),
])
def test_formational_penalty(themes, sent, emo, toxic, penalty):
    assert rules.formational_penalty(themes, sent, emo, toxic) == penalty


def test_score_adds_every_term():
    themes = [theme(-20, 0.6, "negative")]
    result = rules.score(themes, sentiment("negative", 0.85), emotion("anger", 0.9), True, 1)
    # 100 - 12 (theme) - 6.8 (sentiment) - 4.5 (emotion) - 3 (flag) - 20 (toxic) - 10 (penalty)
    assert result.final == pytest.approx(43.7)
    assert result.penalty == 10.0 and result.weighting == 1.0
    assert result.components["raw_score"] == pytest.approx(43.7)
    assert result.components["toxicity"] == -20.0 and result.components["concern_flags"] == -3.0


def test_score_bonus_and_clamps():
    themes = [KEYWORD, theme(10, 0.9, "core_gospel")]
    high = rules.score(themes, sentiment("positive", 0.9), emotion("joy", 0.8), False, 0)
    # 100 + 5 + 15 + (1.5 - 1) * 10 + 4.5 + 2.4
    assert high.components["raw_score"] == pytest.approx(131.9) and high.final == 100.0
    assert high.components["theological_bonus"] == pytest.approx(5.0) and high.weighting == 1.5
    many = [theme(-30, 0.9, "negative")] * 5
    low = rules.score(many, sentiment("negative", 1.0), emotion("anger", 1.0), True, 1)
    assert low.components["raw_score"] < 0 and low.final == 0.0


@pytest.mark.parametrize("final, toxic, level", [
    (95, False, "Very Low"), (90, False, "Very Low"), (89.9, False, "Low"), (75, False, "Low"),
    (74.9, False, "Medium"), (50, False, "Medium"), (49.9, False, "High"), (100, True, "High"),
])
def test_legacy_concern_level(final, toxic, level):
    assert rules.legacy_concern_level(final, toxic) == level


# -- words ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("themes, found, sent, emo, toxic, text", [
    ([], [], sentiment(), emotion(), False, "Standard content analysis completed."),
    ([dict(KEYWORD, theme="jesus"), dict(KEYWORD, theme="grace"),
      dict(theme(-20, 0.5, "negative"), theme="Hatred and vengeance")], [],
     sentiment("positive", 0.9), emotion("joy", 0.8), False,
     ("Contains Christian themes: jesus, grace. Overall sentiment: very positive. "
      "Primary emotion: strongly joy.")),
    ([dict(KEYWORD, theme=w) for w in "abcdef"], ["fuck", "shit", "bitch", "porn"],
     sentiment("positive", 0.7), emotion("sadness", 0.5), True,
     ("Contains Christian themes: a, b, c, d, e. "
      "Contains concerning language: fuck, shit, bitch. Overall sentiment: positive. "
      "Content flagged as potentially inappropriate. Primary emotion: moderately sadness.")),
    ([], [], sentiment("negative", 0.5), emotion("fear", 0.3), False,
     "Overall sentiment: slightly negative. Primary emotion: slightly fear."),
])
def test_explanation(themes, found, sent, emo, toxic, text):
    assert rules.explanation(themes, found, sent, emo, toxic) == text


def test_scripture_table_is_valid_and_covers_every_candidate():
    assert set(rules.SCRIPTURE) == {c.theme for c in rules.CANDIDATES}
    for reference in rules.SCRIPTURE.values():
        assert canonical_reference(reference) == reference


# -- the rendered result --------------------------------------------------------------------------

def render(lyrics: str, **outputs):
    values = {"sentiment": sentiment(), "emotion": emotion(), "safety": SAFE,
              "themes": zero_shot(), **outputs}
    return rules.render("Morning Song", "Test Band", lyrics, 7, rules.ModelOutputs(**values),
                        {"backend": "huggingface"}, 0.25)


def test_render_is_the_contract_shape():
    result = render("Jesus, your grace is new every morning", themes=zero_shot(l0=0.9),
                    sentiment=sentiment("positive", 0.9))
    for section, key in READ_KEYS:
        assert key in getattr(result, section), (section, key)
    frame = result.model_analysis["framework"]
    assert result.get_final_score() == 100.0 and frame["verdict"] == "freely_listen"
    assert frame["recommendation"] == "RECOMMENDED" and frame["confidence"] == 1.0
    assert frame["verdict_probabilities"] == {"freely_listen": 1.0, "context_required": 0.0,
                                              "caution_limit": 0.0, "avoid_formation": 0.0}
    assert frame["formation_risk"] == "low" and frame["narrative_voice"] in schema.NARRATIVE_VOICES
    assert [t["theme"] for t in result.get_biblical_themes()] == ["jesus", "grace",
                                                                  "Christ-centered"]
    (verse,) = result.biblical_analysis["supporting_scripture"]
    assert verse["reference"] == "Colossians 1:18" and verse["theme"] == "Christ-centered"
    assert verse["text"]
    assert result.scoring_results["quality_level"] == "Very Low"
    assert result.content_analysis["concern_level"] == "very_low"
    assert result.model_analysis["sentiment"]["primary"]["label"] == "positive"
    assert result.user_id == 7 and result.processing_time == 0.25


def test_render_a_flagged_toxic_song():
    result = render("you fucking liar, I hate you all", safety={**SAFE, "toxic": 0.9},
                    sentiment=sentiment("negative", 0.95), emotion=emotion("anger", 0.95))
    assert [f["type"] for f in result.get_content_flags()] == ["explicit_language"]
    assert result.model_analysis["content_safety"]["is_toxic"] is True
    assert result.content_analysis["total_penalty"] == 23
    assert result.content_analysis["concern_level"] == "high"
    assert result.scoring_results["formational_penalty"] == 10.0
    # 100 - 3 (flag) - 20 (toxic) - 7.6 (sentiment) - 4.75 (emotion) - 10 (penalty)
    assert result.get_component_scores()["raw_score"] == pytest.approx(54.65)
    assert result.get_final_score() == pytest.approx(54.65, abs=0.06)
    assert result.model_analysis["framework"]["formation_risk"] == "high"
    assert "Contains concerning language: fuck" in result.scoring_results["explanation"]
