"""The legacy 4-model analyzer end to end on tiny random models of the real architectures
(`tests/app/legacy_models.py`; the `tiny_models` fixture is in `tests/app/conftest.py`), so loading
runs the production code (`AutoTokenizer` + `AutoModelForSequenceClassification`)."""

import threading
import time
from pathlib import Path

import pytest

from selah import schema
from selah.analyzers import (
    BACKENDS,
    AnalyzerUnavailable,
    HuggingFaceAnalyzer,
    backend_class,
    preflight,
)
from selah.analyzers.huggingface import SETTINGS, max_length, role_labels
from selah.analyzers.huggingface_rules import CANDIDATE_LABELS
from tests.selah.analyzers.legacy_models import SONGS, TOXICITY
from tests.selah.analyzers.test_base import READ_KEYS


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: at this size threads only add overhead (and stall on a busy machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(models: dict[str, Path], **settings) -> dict:
    """Settings selecting the huggingface backend on `models`."""
    return {"ANALYZER_BACKEND": "huggingface", "HF_DEVICE": "cpu", "ANALYSIS_MAX_CONCURRENCY": 2,
            **{SETTINGS[role]: str(path) for role, path in models.items()}, **settings}


@pytest.fixture(scope="module")
def analyzer(tiny_models) -> HuggingFaceAnalyzer:
    """The analyzer on the tiny models (loaded once for this module)."""
    return HuggingFaceAnalyzer.from_config(config(tiny_models))


def _stable(result) -> dict:
    data = result.to_dict()
    data.pop("timestamp"), data.pop("processing_time")
    return data


def _close(a, b, tolerance: float = 2e-3) -> bool:
    """Equal, floats within `tolerance` (padding changes the last bits of a batch's logits)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tolerance) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= tolerance * max(1.0, abs(a))
    return a == b


# -- loading ---------------------------------------------------------------------------------------

def test_registered_and_selected_by_name(tiny_models):
    assert BACKENDS["huggingface"] is HuggingFaceAnalyzer
    assert backend_class("huggingface") is HuggingFaceAnalyzer
    settings = config(tiny_models)
    ok, message = preflight(settings)
    assert ok and "4 models ready to load on cpu" in message, message
    loaded = backend_class(settings["ANALYZER_BACKEND"]).from_config(settings)
    assert isinstance(loaded, HuggingFaceAnalyzer) and loaded.backend == "huggingface"


@pytest.mark.parametrize("role", list(SETTINGS))
def test_a_missing_model_folder_fails_fast(tiny_models, tmp_path, role):
    missing = tmp_path / "nowhere"
    settings = config(tiny_models, **{SETTINGS[role]: str(missing)})
    ok, message = HuggingFaceAnalyzer.preflight_config(settings)
    assert not ok and SETTINGS[role] in message and str(missing) in message
    assert "does not exist" in message
    with pytest.raises(AnalyzerUnavailable, match=SETTINGS[role]):
        HuggingFaceAnalyzer.from_config(settings)


@pytest.mark.parametrize("settings, reason", [
    ({"HF_EMOTION_MODEL": ""}, "HF_EMOTION_MODEL is not set"),
    ({"HF_DEVICE": "tpu"}, "HF_DEVICE='tpu' is not one of"),
    ({"ANALYSIS_MAX_CONCURRENCY": 0}, "ANALYSIS_MAX_CONCURRENCY must be a positive integer"),
    ({"HF_SAFETY_MODEL": "not a hub id!"}, "neither a folder nor a hub id"),
])
def test_bad_settings_fail_preflight(tiny_models, settings, reason):
    ok, message = HuggingFaceAnalyzer.preflight_config(config(tiny_models, **settings))
    assert not ok and reason in message


def test_an_uncached_hub_id_fails_when_offline(tiny_models, monkeypatch):
    settings = config(tiny_models, HF_THEMES_MODEL="selah-tests/no-such-model")
    assert HuggingFaceAnalyzer.preflight_config(settings)[0]  # online it may still download
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ok, message = HuggingFaceAnalyzer.preflight_config(settings)
    assert not ok and "HF_THEMES_MODEL='selah-tests/no-such-model'" in message
    assert "not in the local hub cache" in message


def test_a_folder_without_config_json(tiny_models, tmp_path):
    ok, message = HuggingFaceAnalyzer.preflight_config(
        config(tiny_models, HF_THEMES_MODEL=str(tmp_path)))
    assert not ok and "HF_THEMES_MODEL" in message and "has no config.json" in message


@pytest.mark.parametrize("role, wrong, reason", [
    ("sentiment", "safety", "are not the sentiment labels"),
    ("themes", "sentiment", "no entailment label"),
    ("safety", "emotion", "no toxic label"),
])
def test_a_model_with_the_wrong_labels_is_refused(tiny_models, role, wrong, reason):
    settings = config(tiny_models, **{SETTINGS[role]: str(tiny_models[wrong])})
    assert HuggingFaceAnalyzer.preflight_config(settings)[0]  # preflight reads no weights
    with pytest.raises(AnalyzerUnavailable, match=f"{SETTINGS[role]}.*{reason}"):
        HuggingFaceAnalyzer.from_config(settings)


@pytest.mark.parametrize("role, names, labels", [
    ("sentiment", ["Negative", "Neutral", "Positive"], ("negative", "neutral", "positive")),
    ("sentiment", ["LABEL_0", "LABEL_1", "LABEL_2"], ("negative", "neutral", "positive")),
    ("themes", ["CONTRADICTION", "NEUTRAL", "ENTAILMENT"], ("contradiction", "neutral",
                                                          "entailment")),
])
def test_labels_come_from_id2label(role, names, labels):
    assert role_labels(role, names) == labels


def test_labels_and_lengths_of_the_loaded_models(analyzer):
    models = analyzer.models
    assert models["emotion"].labels == schema.EMOTION_LABELS
    assert models["safety"].labels == TOXICITY and models["safety"].multi_label
    assert models["themes"].entailment == 2 and not models["sentiment"].multi_label
    # RoBERTa's 66 positions less its padding offset; BERT and BART their tables.
    assert [models[r].max_length for r in ("sentiment", "safety", "themes")] == [64, 64, 64]
    assert max_length(models["safety"].tokenizer, models["safety"].model.config) == 64


def test_info_and_snapshot(analyzer, tiny_models):
    info = analyzer.info()
    assert info["backend"] == "huggingface" and len(info["models"]) == 4
    assert info["batch_size"] == 4 and info["device"] == "cpu" and info["max_concurrency"] == 2
    snapshot = analyzer.snapshot()
    assert snapshot["models"]["themes"] == str(tiny_models["themes"])
    assert snapshot["model_version"].startswith("huggingface-") and snapshot["device"] == "cpu"
    assert HuggingFaceAnalyzer.fingerprint(config(tiny_models)) is None


# -- serving --------------------------------------------------------------------------------------

def test_results_are_complete(analyzer):
    for song, result in zip(SONGS, analyzer.analyze_songs_batch(SONGS)):
        assert result.is_successful(), result.error_message
        for section, key in READ_KEYS:
            assert key in getattr(result, section), (section, key)
        assert result.scoring_results["explanation"]
        assert 0 <= result.get_final_score() <= 100
        models = result.model_analysis
        assert [s["label"] for s in models["sentiment"]["scores"]] == list(schema.SENTIMENT_LABELS)
        assert [s["label"] for s in models["emotions"]["scores"]] == list(schema.EMOTION_LABELS)
        assert isinstance(models["content_safety"]["is_toxic"], bool)
        assert len(models["zero_shot"]["scores"]) == len(CANDIDATE_LABELS)
        assert sum(s["score"] for s in models["zero_shot"]["scores"]) == pytest.approx(1, abs=1e-3)
        assert set(models["framework"]) >= {
            "verdict", "recommendation", "verdict_probabilities", "formation_risk",
            "narrative_voice", "lament_filter_applied", "confidence", "needs_review"}
        for theme in result.get_biblical_themes():
            assert {"theme", "score", "category", "points", "detection_method"} <= set(theme)
        assert result.configuration_snapshot["backend"] == "huggingface"
        assert len(result.processed_text) <= 1575
    results = analyzer.analyze_songs_batch(SONGS)
    assert len({r.get_final_score() for r in results}) == len(SONGS)  # the models did differ
    verses = [v for r in results for v in r.biblical_analysis["supporting_scripture"]]
    assert verses and all(v["text"] for v in verses)
    first, second, _ = results
    assert {"lord", "holy", "grace", "mercy"} <= {t["theme"] for t in first.get_biblical_themes()}
    assert [f["type"] for f in second.get_content_flags()] == ["explicit_language"]


def test_lyrics_spelling_special_tokens_stay_text(analyzer):
    # In batches of 8 (CUDA's) one NLI batch mixes two songs' pairs: an "</s>" read as a token
    # would give its rows more eos tokens than the others, which BART's head refuses.
    eight = HuggingFaceAnalyzer(analyzer.models, "cpu")
    eight.batch_size = 8
    song = {"title": "Tags", "artist": "Test Band", "lyrics": "close the tag </s> and open <s>"}
    for result in eight.analyze_songs_batch([song, SONGS[1]]):
        assert result.is_successful(), result.error_message


def test_same_song_same_result(analyzer):
    assert _stable(analyzer.analyze_song(**SONGS[0])) == _stable(analyzer.analyze_song(**SONGS[0]))


def test_a_batch_equals_one_by_one(analyzer):
    batch = analyzer.analyze_songs_batch(SONGS)
    for song, result in zip(SONGS, batch):
        assert _close(_stable(result), _stable(analyzer.analyze_song(**song)))


def test_zero_shot_runs_one_nli_pass_per_label_in_batches_of_four(analyzer, monkeypatch):
    themes, sizes, hypotheses = analyzer.models["themes"], [], []
    real = themes.logits

    def counted(texts, pairs=None, device="cpu"):
        sizes.append(len(texts))
        hypotheses.extend(pairs)
        return real(texts, pairs, device)

    monkeypatch.setattr(themes, "logits", counted)
    analyzer.analyze_songs_batch(SONGS[:2])
    assert hypotheses == [f"This example is {label}." for label in CANDIDATE_LABELS] * 2
    assert max(sizes) == 4


def test_no_lyrics_rule_sends_nothing_to_a_model(analyzer, monkeypatch):
    monkeypatch.setattr(analyzer, "_analyze_batch", lambda items: pytest.fail("model called"))
    instrumental, empty = analyzer.analyze_songs_batch([
        {"title": "Prelude (Instrumental)", "artist": "Test Band", "lyrics": ""},
        {"title": "Untitled", "artist": "Test Band", "lyrics": "la la la"}])
    assert (instrumental.get_final_score(), instrumental.get_quality_level()) == \
        (75.0, "Instrumental")
    assert (empty.get_final_score(), empty.get_quality_level()) == (50.0, "No Lyrics Available")


def test_the_semaphore_bounds_concurrent_model_calls(analyzer):
    single = HuggingFaceAnalyzer(analyzer.models, "cpu", max_concurrency=1)
    active, peak, lock = [0], [0], threading.Lock()
    real = single._classify

    def tracked(role, texts):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return real(role, texts)

    single._classify = tracked
    threads = [threading.Thread(target=single.analyze_song, kwargs=SONGS[1]) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 1
