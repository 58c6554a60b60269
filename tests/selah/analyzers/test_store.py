"""The model store: lazy load, failure reasons, atomic reload that keeps the old model on error."""

import threading

import pytest

from selah import analyzers
from selah.analyzers import AnalyzerUnavailable
from selah.analyzers.store import ModelStore
from tests.fake_analyzer import FakeAnalyzer


class _Broken(FakeAnalyzer):
    @classmethod
    def from_config(cls, config):
        raise AnalyzerUnavailable("checkpoint /x is missing manifest.json")


class _BadSmoke(FakeAnalyzer):
    def _analyze_batch(self, items):
        raise RuntimeError("weights are NaN")


class _Switchable(FakeAnalyzer):
    """Builds whatever `mode` says: a good version, or a broken one."""

    mode = {"version": "v1", "broken": False}

    @classmethod
    def from_config(cls, config):
        if cls.mode["broken"]:
            return _BadSmoke("bad")
        return cls(version=cls.mode["version"])


def test_loads_lazily_and_reports_ready():
    store = ModelStore(FakeAnalyzer, {"FAKE_MODEL_VERSION": "fake-7"})
    assert store.status == "not_initialized" and store.model_version is None
    analyzer = store.get()
    assert store.status == "ready" and store.model_version == "fake-7"
    assert store.get() is analyzer
    info = store.info()
    assert info["status"] == "ready" and info["model_count"] == 1
    assert info["analyzer_type"] == "FakeAnalyzer"


def test_failed_load_says_why():
    store = ModelStore(_Broken, {})
    with pytest.raises(AnalyzerUnavailable, match="manifest.json"):
        store.get()
    assert store.status == "failed"
    assert "manifest.json" in store.info()["error"]
    with pytest.raises(AnalyzerUnavailable, match="manifest.json"):
        store.get()


def test_smoke_prediction_must_succeed():
    store = ModelStore(_BadSmoke, {})
    with pytest.raises(AnalyzerUnavailable, match="smoke prediction failed.*NaN"):
        store.get()


def test_reload_swaps_in_a_good_model_and_refuses_a_broken_one():
    _Switchable.mode = {"version": "v1", "broken": False}
    store = ModelStore(_Switchable, {})
    old = store.get()
    _Switchable.mode = {"version": "v2", "broken": False}
    assert store.reload() == (True, "loaded v2")
    new = store.get()
    assert new is not old and new.model_version == "v2"
    # A request that took the old analyzer before the swap still finishes on it.
    assert old.analyze_song("T", "A", "a song long enough to analyse").is_successful()

    _Switchable.mode = {"version": "v3", "broken": True}
    ok, message = store.reload()
    assert not ok and "NaN" in message
    assert store.get() is new and store.status == "ready"


def test_background_load():
    store = ModelStore(FakeAnalyzer, {})
    thread = store.load_in_background()
    thread.join(5)
    assert store.status == "ready"


def test_concurrent_first_use_loads_once():
    built = []

    class Counting(FakeAnalyzer):
        @classmethod
        def from_config(cls, config):
            built.append(1)
            return cls()

    store = ModelStore(Counting, {})
    threads = [threading.Thread(target=store.get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1


def test_module_helpers_use_the_app_store(app):
    with app.app_context():
        assert analyzers.get_analyzer_info()["status"] == "not_initialized"
        assert not analyzers.is_analyzer_ready()
        assert analyzers.preflight() == (True, "fake analyzer needs nothing")
        analyzer = analyzers.initialize_analyzer()
        assert analyzers.get_shared_analyzer() is analyzer
        assert analyzers.is_analyzer_ready()
        assert analyzers.get_analyzer_info()["status"] == "ready"
        analyzers.clear_analyzer_cache()
        assert analyzers.get_analyzer_info()["status"] == "not_initialized"
