"""The label schema: verdicts and bands, the theme catalogue and its aliases, parsing helpers."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from selah import schema


@pytest.mark.parametrize("value, expected", [
    ("freely_listen", "freely_listen"), ("RECOMMENDED", "freely_listen"),
    ("acceptable", "context_required"), ("Caution-Limit", "caution_limit"),
    ("NOT_RECOMMENDED", "avoid_formation"), (" avoid_formation ", "avoid_formation"),
])
def test_canonical_verdict_folds_plan_names_and_case(value, expected):
    assert schema.canonical_verdict(value) == expected


def test_unknown_verdict_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown verdict 'maybe'.*freely_listen.*RECOMMENDED"):
        schema.canonical_verdict("maybe")


@pytest.mark.parametrize("score, verdict", [
    (100, "freely_listen"), (85, "freely_listen"), (84, "context_required"),
    (60, "context_required"), (59.5, "caution_limit"), (40, "caution_limit"),
    (39, "avoid_formation"), (0, "avoid_formation"),
])
def test_verdict_for_score_follows_the_bands(score, verdict):
    assert schema.verdict_for_score(score) == verdict


@pytest.mark.parametrize("score, confidence, expected", [
    (87, None, True), (82, None, True), (70, None, False), (43, None, True), (70, 0.4, True),
    (70, 0.9, False),
])
def test_needs_review_near_band_edges_or_low_confidence(score, confidence, expected):
    assert schema.needs_review(score, confidence) is expected


@pytest.mark.parametrize("themes, concerns, expected", [
    (["Gospel Message"], [], "clear"),
    (["Faith & Trust", "Scripture References"], [], "clear"),
    (["Gospel Message"], ["Theological Error"], "mixed"),
    (["Scripture References", "Vague Spirituality"], [], "mixed"),
    (["Hope & Encouragement"], [], "unclear"),
    ([], ["Occult/Witchcraft"], "unclear"),
    ([], ["Profanity", "Violence/Revenge"], "none"),
    ([], [], "none"),
    (["Not A Catalogue Theme"], [], "none"),
])
def test_doctrinal_clarity_is_read_off_themes_and_concerns(themes, concerns, expected):
    assert schema.doctrinal_clarity(themes, concerns) == expected
    assert expected in schema.DOCTRINAL_CLARITIES


def test_doctrinal_names_are_catalogue_names():
    assert schema.DOCTRINAL_ERRORS <= set(schema.CONCERN_CATEGORIES)
    assert schema.DOCTRINAL_THEMES <= set(schema.THEME_NAMES)


def test_catalogue_is_consistent():
    names = [t.name for t in schema.THEMES]
    assert len(names) == len(set(names))
    for theme in schema.THEMES:
        assert theme.category in schema.THEME_CATEGORIES
        assert (theme.points < 0) == (theme.category == "negative"), theme
    assert set(schema.CONCERN_CATEGORIES) <= set(names)
    assert set(schema.THEME_ALIASES.values()) <= set(names)
    assert not set(schema.THEME_ALIASES) & set(names)
    for raw, target in schema.CONCERN_ALIASES.items():
        assert target in schema.CONCERN_CATEGORIES
        assert schema.THEME_ALIASES[raw] == target  # concerns fold like the same-named themes


@pytest.mark.parametrize("raw, expected", [
    ("Love", "Love for Others"), ("love FOR others", "Love for Others"),
    ("Occult", "Occult/Witchcraft"), ("Faith and Trust", "Faith & Trust"),
    ("God\u2019s Love & Grace", "God's Love & Grace"), ("grace", "God's Love & Grace"),
    ("Violence / Revenge", "Violence/Revenge"),
])
def test_fold_theme(raw, expected):
    assert schema.fold_theme(raw).name == expected


def test_unknown_theme_folds_to_none():
    assert schema.fold_theme("Underwater Basket Weaving") is None
    assert schema.fold_concern("Idolatry ") == "Idolatry"
    assert schema.fold_concern("Hope & Encouragement") is None  # not a concern category


@pytest.mark.parametrize("text, expected", [
    ("Faith & Trust (+8)", ("Faith & Trust", 8)), ("Idolatry (-20)", ("Idolatry", -20)),
    ("Hope (6 pts)", ("Hope", 6)), ("grace", ("grace", None)),
])
def test_parse_theme_string(text, expected):
    assert schema.parse_theme_string(text) == expected


def test_parse_concern_string_and_severity():
    assert schema.parse_concern_string("Idolatry (high)") == ("Idolatry", "high")
    assert schema.parse_concern_string("Idolatry") == ("Idolatry", None)
    assert schema.canonical_severity("Severe") == "high"
    assert schema.canonical_severity("urgent") is None


def test_label_to_dict_uses_catalogue_points():
    label = schema.Label(score=90, verdict="freely_listen", themes=("Faith & Trust",),
                         concerns=(("Idolatry", "low"),))
    data = label.to_dict()
    assert data["themes"] == [{"theme": "Faith & Trust", "category": "character_spiritual",
                               "points": 8}]
    assert data["concerns"] == [{"category": "Idolatry", "severity": "low"}]
    json.dumps(data)


def test_schema_imports_nothing_heavy():
    source = Path(schema.__file__).read_text(encoding="utf-8")
    imports = set(re.findall(r"^(?:from|import) (\w+)", source, re.M))
    assert imports <= {"re", "unicodedata", "dataclasses"}


@pytest.mark.data
def test_every_raw_theme_and_concern_of_the_shared_data_folds(shared_songs):
    themes, concerns = Counter(), Counter()
    with shared_songs.open(encoding="utf-8") as handle:
        for line in handle:
            label = json.loads(line)["label"]
            for key in ("themes_positive", "themes_negative"):
                for text in label[key]:
                    themes[(schema.parse_theme_string(text)[0], key)] += 1
            for text in label["concerns"]:
                concerns[schema.parse_concern_string(text)[0]] += 1
    assert len({name for name, _ in themes}) == 157
    assert len(concerns) == 32
    for name, key in themes:
        theme = schema.fold_theme(name)
        assert theme is not None, name
        assert (theme.category == "negative") == (key == "themes_negative"), name
    for name in concerns:
        assert schema.fold_concern(name) in schema.CONCERN_CATEGORIES, name
