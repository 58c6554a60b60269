"""Fixtures of the compatibility tests: a process-wide store of the analyzer, as a web app with
no Selah config gets it, reset around each test."""

import pytest

from selah.analyzers import store as store_module
from selah.analyzers.store import ModelStore
from selah.compat import HuggingFaceAnalyzer
from tests.fake_analyzer import FakeAnalyzer


@pytest.fixture
def process_store(monkeypatch):
    """Install a process-wide store (the fake backend unless a class is given); returns a
    function `(backend_cls=FakeAnalyzer, **settings) -> ModelStore`."""
    monkeypatch.setattr(HuggingFaceAnalyzer, "_instance", None)

    def install(backend_cls=FakeAnalyzer, **settings) -> ModelStore:
        store = ModelStore(backend_cls, {"ANALYZER_BACKEND": backend_cls.backend, **settings})
        monkeypatch.setattr(store_module, "_process_store", store)
        return store

    yield install
    HuggingFaceAnalyzer._instance = None
