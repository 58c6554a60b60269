"""`selah.settings.analyzer_settings`: read from the environment when called, typed, checked."""

import pytest

from selah.settings import analyzer_settings


def test_read_when_called_not_when_imported(monkeypatch):
    monkeypatch.delenv("ANALYZER_BACKEND", raising=False)
    assert analyzer_settings()["ANALYZER_BACKEND"] == "gptoss"
    monkeypatch.setenv("ANALYZER_BACKEND", "llm")
    monkeypatch.setenv("GPTOSS_BATCH_SIZE", "4")
    settings = analyzer_settings()
    assert settings["ANALYZER_BACKEND"] == "llm" and settings["GPTOSS_BATCH_SIZE"] == 4


def test_every_backend_setting_is_there():
    names = set(analyzer_settings())
    assert {"ANALYZER_BACKEND", "GPTOSS_MODEL_PATH", "GPTOSS_DEVICE", "GPTOSS_RUNTIME",
            "GPTOSS_BATCH_SIZE", "ANALYSIS_MAX_CONCURRENCY"} <= names
    assert {n for n in names if n.startswith("HF_")} == {
        "HF_SENTIMENT_MODEL", "HF_SAFETY_MODEL", "HF_EMOTION_MODEL", "HF_THEMES_MODEL",
        "HF_DEVICE"}
    assert len([n for n in names if n.startswith("LLM_")]) == 10


@pytest.mark.parametrize(("name", "value", "message"), [
    ("GPTOSS_BATCH_SIZE", "0", "GPTOSS_BATCH_SIZE must be at least 1"),
    ("LLM_TIMEOUT_SECONDS", "soon", "LLM_TIMEOUT_SECONDS must be a number"),
])
def test_a_bad_value_names_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        analyzer_settings()
