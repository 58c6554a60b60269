"""`selah.compat`'s analyzer and helpers, as the web app calls them: no arguments, no Selah app."""

import pytest
from flask import Flask

from selah import compat
from selah.analyzers import GPTOSSChristianAnalyzer
from selah.analyzers import store as store_module
from selah.compat import AnalyzerUnavailable, HuggingFaceAnalyzer

SONG = {"title": "Harbor Light", "artist": "Test Choir",
        "lyrics": "You are my harbor light when the storm is high\nI will trust Your hand"}
# The keys the web app indexes without a default (contract.md, section 2).
HARD_KEYS = ("final_score", "explanation")


def assert_complete(result) -> None:
    """Every key the web app reads, present and of its type."""
    assert all(key in result.scoring_results for key in HARD_KEYS)
    assert isinstance(result.scoring_results["explanation"], str)
    assert result.scoring_results["explanation"]
    assert 0.0 <= float(result.scoring_results["final_score"]) <= 100.0
    for key in ("quality_level", "component_scores", "verdict_summary"):
        assert key in result.scoring_results
    assert {"themes", "supporting_scripture", "biblical_themes_count"} <= set(
        result.biblical_analysis)
    assert {"concern_flags", "safety_assessment", "concern_level"} <= set(result.content_analysis)
    assert result.timestamp.tzinfo is not None


def test_the_legacy_constructor_takes_nothing_and_loads_nothing(process_store):
    store = process_store()
    analyzer = HuggingFaceAnalyzer()
    assert store.status == "not_initialized" and analyzer._sentiment_analyzer is None
    result = analyzer.analyze_song(SONG["title"], SONG["artist"], SONG["lyrics"])
    assert result.is_successful() and store.status == "ready"
    assert result.configuration_snapshot["backend"] == "fake"
    assert not hasattr(analyzer, "analyze_comprehensive")


def test_get_instance_is_one_shared_loaded_instance_until_reset(process_store):
    store = process_store()
    first = HuggingFaceAnalyzer.get_instance()
    assert HuggingFaceAnalyzer.get_instance() is first and store.status == "ready"
    # The four attributes the web app's own cache probes are the one loaded model.
    loaded = store.loaded
    assert all(getattr(first, name) is loaded for name in (
        "_sentiment_analyzer", "_safety_analyzer", "_emotion_analyzer", "_theme_analyzer"))
    HuggingFaceAnalyzer.reset_cache()
    assert store.status == "not_initialized" and store.loaded is None
    assert HuggingFaceAnalyzer.get_instance() is not first


def test_get_instance_raises_when_the_model_cannot_load_and_analyses_report_it(
    process_store, tmp_path
):
    process_store(GPTOSSChristianAnalyzer, GPTOSS_MODEL_PATH=str(tmp_path / "missing"),
                  GPTOSS_DEVICE="cpu")
    with pytest.raises(AnalyzerUnavailable, match="missing"):
        HuggingFaceAnalyzer.get_instance()
    results = HuggingFaceAnalyzer().analyze_songs_batch([SONG, "not a song"])
    assert [r.is_successful() for r in results] == [False, False]
    assert "analyzer unavailable" in results[0].error_message
    assert results[0].title == SONG["title"]
    for result in results:
        assert_complete(result)


def test_results_for_no_lyrics_and_bad_input_are_complete(process_store):
    process_store()
    instrumental, no_lyrics, bad = HuggingFaceAnalyzer().analyze_songs_batch([
        {"title": "Prelude in D (Instrumental)", "artist": "Organ", "lyrics": ""},
        {"title": "Unknown", "artist": "X", "lyrics": "la la"},
        {"title": "Broken", "artist": "X", "lyrics": 12345},
    ])
    assert instrumental.scoring_results["quality_level"] == "Instrumental"
    assert instrumental.get_final_score() == 75
    assert no_lyrics.scoring_results["quality_level"] == "No Lyrics Available"
    assert not bad.is_successful() and "lyrics must be a string" in bad.error_message
    for result in (instrumental, no_lyrics, bad):
        assert_complete(result)
    assert HuggingFaceAnalyzer().analyze_songs_batch([]) == []


def test_helpers_work_inside_a_foreign_flask_app_and_outside_any(process_store):
    """The web app's Flask app has no Selah store: the helpers serve the process-wide one
    (they raised KeyError: 'selah.model_store' before)."""
    process_store()
    foreign = Flask("webapp")
    with foreign.app_context():
        assert compat.get_analyzer_info()["status"] == "not_initialized"
        assert compat.is_analyzer_ready() is False
        assert compat.preflight() == (True, "fake analyzer needs nothing")
        analyzer = compat.initialize_analyzer()
        info = compat.get_analyzer_info()
    assert info["status"] == "ready" and info["models"] == ["fake"] and info["model_count"] == 1
    assert info["analyzer_type"] == "FakeAnalyzer"
    assert compat.get_shared_analyzer() is analyzer and compat.is_analyzer_ready()
    compat.clear_analyzer_cache()
    assert compat.get_analyzer_info()["status"] == "not_initialized"


def test_the_environment_alone_configures_it(monkeypatch, tmp_path):
    """No store installed, no config given: ANALYZER_BACKEND and GPTOSS_MODEL_PATH from the
    environment decide what the legacy names serve."""
    monkeypatch.setattr(store_module, "_process_store", None)
    monkeypatch.setattr(HuggingFaceAnalyzer, "_instance", None)
    monkeypatch.setenv("ANALYZER_BACKEND", "gptoss")
    monkeypatch.setenv("GPTOSS_MODEL_PATH", str(tmp_path / "elsewhere"))
    ok, message = compat.preflight()
    assert not ok and "elsewhere" in message
    assert HuggingFaceAnalyzer().backend == "gptoss"
    monkeypatch.setattr(store_module, "_process_store", None)
    monkeypatch.setenv("ANALYZER_BACKEND", "nonsense")
    result = HuggingFaceAnalyzer().analyze_song("t", "a", "some lyrics that are long enough")
    assert not result.is_successful()
    assert "valid backends: gptoss, huggingface, llm" in result.error_message
    with pytest.raises(ValueError, match="unknown ANALYZER_BACKEND 'nonsense'"):
        HuggingFaceAnalyzer.get_instance()


def test_the_embedded_model_answers_through_the_legacy_name(monkeypatch):
    monkeypatch.setattr(store_module, "_process_store", None)
    monkeypatch.setattr(HuggingFaceAnalyzer, "_instance", None)
    for name in ("ANALYZER_BACKEND", "GPTOSS_MODEL_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GPTOSS_DEVICE", "cpu")
    analyzer = HuggingFaceAnalyzer.get_instance()
    result = analyzer.analyze_song(SONG["title"], SONG["artist"], SONG["lyrics"], user_id=7)
    assert result.is_successful() and result.user_id == 7
    assert result.configuration_snapshot["backend"] == "gptoss"
    assert result.model_analysis["framework"]["verdict"] in (
        "freely_listen", "context_required", "caution_limit", "avoid_formation")
    assert_complete(result)
    assert compat.get_analyzer_info()["analyzer_type"] == "GPTOSSChristianAnalyzer"
    assert isinstance(compat.get_shared_analyzer(), GPTOSSChristianAnalyzer)
