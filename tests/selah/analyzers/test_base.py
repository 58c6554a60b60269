"""The analyzer interface: AnalysisResult, the no-lyrics rule, never-raise, singletons (loaded
through a ModelStore)."""

import threading
from datetime import datetime

import pytest

from selah.analyzers import (
    BACKENDS,
    AnalysisResult,
    Analyzer,
    AnalyzerRateLimited,
    AnalyzerUnavailable,
    GPTOSSChristianAnalyzer,
    backend_class,
    preflight,
)
from selah.analyzers import store as model_store
from selah.analyzers.base import (
    BaseAnalyzer,
    concern_level,
    no_lyrics_result,
    quality_level,
    recommendation,
)
from selah.analyzers.store import ModelStore, current_store
from tests.fake_analyzer import FakeAnalyzer

LYRICS = "Grace that found me in the dark\nLight that kindled in my heart\nI will sing"

# The keys the web app hard-indexes (contract section 2, marked *) and the other keys it reads.
HARD_INDEXED = [("scoring_results", "final_score"), ("scoring_results", "explanation")]
READ_KEYS = HARD_INDEXED + [
    ("scoring_results", "quality_level"), ("scoring_results", "component_scores"),
    ("scoring_results", "verdict_summary"), ("scoring_results", "formation_guidance"),
    ("scoring_results", "theological_weighting"), ("scoring_results", "formational_penalty"),
    ("biblical_analysis", "themes"), ("biblical_analysis", "supporting_scripture"),
    ("biblical_analysis", "biblical_themes_count"), ("content_analysis", "concern_flags"),
    ("content_analysis", "safety_assessment"), ("content_analysis", "total_penalty"),
    ("content_analysis", "concern_level"),
]
DATACLASS_FIELDS = [
    "title", "artist", "lyrics_text", "processed_text", "content_analysis", "biblical_analysis",
    "model_analysis", "scoring_results", "processing_time", "timestamp", "user_id",
    "analysis_version", "error_message", "configuration_snapshot",
]


def _results():
    fake = FakeAnalyzer()
    return {
        "model": fake.analyze_song("Morning", "Band", LYRICS),
        "error": AnalysisResult.create_error("T", "A", LYRICS, "model exploded"),
        "no_lyrics": fake.analyze_song("Untitled", "Band", ""),
        "instrumental": fake.analyze_song("Prelude in D (Instrumental)", "Band", "  "),
    }


@pytest.mark.parametrize("kind", ["model", "error", "no_lyrics", "instrumental"])
@pytest.mark.parametrize("section,key", READ_KEYS)
def test_every_result_has_the_keys_callers_read(kind, section, key):
    result = _results()[kind]
    assert key in getattr(result, section), f"{kind}: {section}.{key} missing"
    assert key in result.to_dict()[section]


@pytest.mark.parametrize("kind", ["model", "error", "no_lyrics", "instrumental"])
def test_explanation_is_a_non_empty_string(kind):
    explanation = _results()[kind].scoring_results["explanation"]
    assert isinstance(explanation, str) and explanation.strip()


def test_to_dict_has_every_field_and_an_aware_timestamp():
    data = _results()["model"].to_dict()
    assert set(DATACLASS_FIELDS) <= set(data)
    assert datetime.fromisoformat(data["timestamp"]).tzinfo is not None
    assert data["recommendation"] == recommendation(data["scoring_results"]["final_score"])


def test_to_dict_is_asdict_and_a_copy_that_leaves_the_result_as_it_was():
    from dataclasses import asdict

    result = _results()["model"]
    data = result.to_dict()
    expected = asdict(result)
    expected["timestamp"] = result.timestamp.isoformat()
    expected["recommendation"] = result.get_recommendation()
    assert data == expected
    data["scoring_results"]["final_score"] = -1.0
    data["biblical_analysis"].setdefault("themes", []).append({"theme": "added"})
    assert result.get_final_score() != -1.0
    assert {"theme": "added"} not in result.get_biblical_themes()


def test_from_dict_round_trips():
    result = _results()["model"]
    assert AnalysisResult.from_dict(result.to_dict()) == result


@pytest.mark.parametrize("title,score,level", [
    ("Prelude in D (Instrumental)", 75.0, "Instrumental"),
    ("Ambient Meditation", 75.0, "Instrumental"),
    ("Soaking Prayer Music", 75.0, "Instrumental"),
    ("Movie SCORE suite", 75.0, "Instrumental"),
    ("Untitled", 50.0, "No Lyrics Available"),
])
@pytest.mark.parametrize("lyrics", ["", "   ", "la la la!", "0123456789"])
def test_no_lyrics_rule_skips_the_model(title, score, level, lyrics):
    fake = FakeAnalyzer()
    before = FakeAnalyzer.calls
    result = fake.analyze_song(title, "Band", lyrics)
    assert FakeAnalyzer.calls == before
    assert (result.get_final_score(), result.get_quality_level()) == (score, level)
    assert result.is_successful()


def test_eleven_characters_go_to_the_model():
    before = FakeAnalyzer.calls
    FakeAnalyzer().analyze_song("Intro", "Band", "01234567890")
    assert FakeAnalyzer.calls == before + 1


@pytest.mark.parametrize("score,level,concern,advice", [
    (100, "Very Low", "very_low", "Highly recommended for Christian audiences"),
    (85, "Very Low", "very_low", "Highly recommended for Christian audiences"),
    (84.9, "Low", "low", "Generally appropriate for Christian audiences"),
    (70, "Low", "low", "Generally appropriate for Christian audiences"),
    (50, "Medium", "medium", "Review recommended - some concerns may apply"),
    (49, "High", "high", "Not recommended for Christian audiences"),
    (0, "High", "high", "Not recommended for Christian audiences"),
])
def test_score_bands(score, level, concern, advice):
    assert (quality_level(score), concern_level(score), recommendation(score)) == (
        level, concern, advice)


def test_batch_keeps_order_and_length():
    songs = [{"title": f"S{i}", "artist": "A", "lyrics": f"{LYRICS} verse {i}"} for i in range(5)]
    songs.insert(2, {"title": "Interlude", "artist": "A", "lyrics": ""})
    results = FakeAnalyzer().analyze_songs_batch(songs)
    assert [r.title for r in results] == [s["title"] for s in songs]
    assert results[2].get_quality_level() == "Instrumental"
    assert FakeAnalyzer().analyze_songs_batch([]) == []


def test_batch_ignores_extra_keys_and_reports_bad_songs():
    results = FakeAnalyzer().analyze_songs_batch([
        {"title": "T", "artist": "A", "lyrics": LYRICS, "spotify_id": "x"},
        {"title": "T", "artist": "A", "lyrics": 12345},
        "not a dict",
    ])
    assert results[0].is_successful()
    assert "lyrics must be a string" in results[1].error_message
    assert results[2].error_message.startswith("invalid song")
    assert all("final_score" in r.scoring_results for r in results)


class _Exploding(FakeAnalyzer):
    def _analyze_batch(self, items):
        raise RuntimeError("CUDA out of memory")


class _Limited(FakeAnalyzer):
    def _analyze_batch(self, items):
        raise AnalyzerRateLimited("slow down", retry_after=2.5)


def test_model_failure_becomes_a_complete_error_result():
    result = _Exploding().analyze_song("T", "A", LYRICS)
    assert not result.is_successful()
    assert "CUDA out of memory" in result.error_message
    assert result.get_final_score() == 0.0
    assert result.scoring_results["explanation"].startswith("Analysis failed")
    assert result.configuration_snapshot["backend"] == "fake"


def test_rate_limit_is_the_one_exception_that_escapes():
    with pytest.raises(AnalyzerRateLimited) as caught:
        _Limited().analyze_song("T", "A", LYRICS)
    assert caught.value.retry_after == 2.5


def test_legacy_accessors():
    result = _results()["model"]
    assert result.get_biblical_themes()[0]["theme"] == "Hope & Encouragement"
    assert result.get_component_scores() == {"fake": result.get_final_score()}
    summary = result.get_summary()
    assert summary["final_score"] == result.get_final_score()
    assert summary["recommendation"] == result.get_recommendation()


def test_no_analyzer_defines_analyze_comprehensive():
    for cls in [*BACKENDS.values(), BaseAnalyzer, FakeAnalyzer]:
        assert not hasattr(cls, "analyze_comprehensive"), cls


def test_fake_satisfies_the_protocol():
    assert isinstance(FakeAnalyzer(), Analyzer)


def test_singleton_helpers():
    FakeAnalyzer.reset_cache()
    first = FakeAnalyzer.get_instance({"FAKE_MODEL_VERSION": "fake-single"})
    assert FakeAnalyzer.get_instance() is first
    assert first.model_version == "fake-single"
    FakeAnalyzer.reset_cache()
    assert FakeAnalyzer.get_instance({}) is not first
    FakeAnalyzer.reset_cache()


class _Counting(FakeAnalyzer):
    """Counts `from_config` calls; `broken` makes them fail."""

    built: list = []
    broken = False

    @classmethod
    def from_config(cls, config):
        cls.built.append(dict(config))
        if cls.broken:
            raise AnalyzerUnavailable("checkpoint /x is missing manifest.json")
        return super().from_config(config)


@pytest.fixture
def counting(monkeypatch):
    """A fresh `_Counting` subclass, its cache reset afterwards, and no process-wide store yet."""
    monkeypatch.setattr(model_store, "_process_store", None)
    cls = type("Counting", (_Counting,), {"built": [], "broken": False})
    yield cls
    cls.reset_cache()


def test_get_instance_loads_once_through_a_model_store(counting, monkeypatch):
    loads = []
    real_load = ModelStore._load_locked
    monkeypatch.setattr(ModelStore, "_load_locked",
                        lambda store: loads.append(1) or real_load(store))
    threads = [threading.Thread(target=counting.get_instance, args=({},)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(counting.built) == 1 and len(loads) == 1
    assert counting.get_instance({"FAKE_MODEL_VERSION": "ignored"}).model_version == "fake-1"
    assert model_store._process_store is None


def test_get_instance_shares_the_process_store_when_the_environment_selects_it(
    counting, monkeypatch
):
    monkeypatch.setitem(BACKENDS, "counting", counting)
    monkeypatch.setenv("ANALYZER_BACKEND", "counting")
    instance = counting.get_instance()
    assert current_store().get() is instance
    assert current_store().backend_cls is counting and len(counting.built) == 1
    counting.reset_cache()
    assert current_store().status == "not_initialized"
    assert counting.get_instance() is not instance and len(counting.built) == 2


def test_get_instance_of_another_backend_leaves_the_process_store_alone(counting, monkeypatch):
    monkeypatch.setenv("ANALYZER_BACKEND", "gptoss")
    assert counting.get_instance().model_version == "fake-1"
    assert counting.built[0]["ANALYZER_BACKEND"] == "gptoss"
    assert model_store._process_store is None


def test_a_failed_get_instance_is_tried_again(counting):
    counting.broken = True
    with pytest.raises(AnalyzerUnavailable, match="manifest.json"):
        counting.get_instance({"FAKE_MODEL_VERSION": "bad"})
    counting.broken = False
    assert counting.get_instance({"FAKE_MODEL_VERSION": "good"}).model_version == "good"
    assert [c["FAKE_MODEL_VERSION"] for c in counting.built] == ["bad", "good"]


def test_backend_lookup_lists_valid_names():
    assert backend_class("gptoss") is GPTOSSChristianAnalyzer
    with pytest.raises(ValueError, match="valid backends: gptoss"):
        backend_class("huggingfce")


def test_gptoss_preflight_names_what_is_missing(tmp_path):
    ok, message = preflight({"ANALYZER_BACKEND": "gptoss", "GPTOSS_MODEL_PATH": str(tmp_path)})
    assert not ok
    assert str(tmp_path) in message and "manifest.json" in message
    ok, message = preflight({"ANALYZER_BACKEND": "nope"})
    assert not ok and "valid backends" in message


EMPTY_CONTENT = {"concern_flags": [], "safety_assessment": {}, "total_penalty": 0,
                 "concern_level": "unknown"}
EMPTY_BIBLICAL = {"themes": [], "supporting_scripture": [], "biblical_themes_count": 0}


def _scoring(score, explanation, level, summary):
    return {"final_score": score, "explanation": explanation, "quality_level": level,
            "component_scores": {}, "verdict_summary": summary, "formation_guidance": "",
            "theological_weighting": 0.0, "formational_penalty": 0.0}


# Every field but the timestamp, exactly as the empty results have always been built.
PINNED_EMPTY_RESULTS = {
    "error": {
        "title": "T", "artist": "A", "lyrics_text": "words", "processed_text": "",
        "content_analysis": EMPTY_CONTENT, "biblical_analysis": EMPTY_BIBLICAL,
        "model_analysis": {},
        "scoring_results": _scoring(0.0, "Analysis failed: model exploded", "Unknown", ""),
        "processing_time": 1.5, "user_id": 7, "analysis_version": "selah-1",
        "error_message": "model exploded", "configuration_snapshot": {"backend": "fake"},
        "recommendation": "Not recommended for Christian audiences",
    },
    "no_lyrics": {
        "title": "Untitled", "artist": "Band", "lyrics_text": "la", "processed_text": "",
        "content_analysis": EMPTY_CONTENT, "biblical_analysis": EMPTY_BIBLICAL,
        "model_analysis": {},
        "scoring_results": _scoring(
            50.0, "No lyrics available: the song was not analysed", "No Lyrics Available",
            "No lyrics available: the song was not analysed"),
        "processing_time": 0.0, "user_id": 3, "analysis_version": "selah-1",
        "error_message": None, "configuration_snapshot": {"rule": "no_lyrics"},
        "recommendation": "Review recommended - some concerns may apply",
    },
    "instrumental": {
        "title": "Prelude (Instrumental)", "artist": "Band", "lyrics_text": "",
        "processed_text": "",
        "content_analysis": EMPTY_CONTENT, "biblical_analysis": EMPTY_BIBLICAL,
        "model_analysis": {},
        "scoring_results": _scoring(
            75.0, "Instrumental track: no lyrics to analyse", "Instrumental",
            "Instrumental track: no lyrics to analyse"),
        "processing_time": 0.0, "user_id": None, "analysis_version": "selah-1",
        "error_message": None, "configuration_snapshot": {"rule": "no_lyrics"},
        "recommendation": "Generally appropriate for Christian audiences",
    },
}


def _empty_result(kind):
    if kind == "error":
        return AnalysisResult.create_error("T", "A", "words", "model exploded", user_id=7,
                                           processing_time=1.5,
                                           configuration_snapshot={"backend": "fake"})
    if kind == "no_lyrics":
        return no_lyrics_result("Untitled", "Band", "la", 3)
    return no_lyrics_result("Prelude (Instrumental)", "Band", "", None)


@pytest.mark.parametrize("kind", sorted(PINNED_EMPTY_RESULTS))
def test_empty_results_are_pinned(kind):
    data = _empty_result(kind).to_dict()
    assert datetime.fromisoformat(data.pop("timestamp")).tzinfo is not None
    assert data == PINNED_EMPTY_RESULTS[kind]


def test_empty_results_share_no_mutable_state():
    first, second = _empty_result("error"), _empty_result("no_lyrics")
    first.content_analysis["concern_flags"].append({"type": "x"})
    first.scoring_results["component_scores"]["x"] = 1.0
    assert second.content_analysis["concern_flags"] == []
    assert _empty_result("error").scoring_results["component_scores"] == {}
