"""Fixtures of the backend tests: the tiny legacy models of the `huggingface` backend and the
scripted server of the `llm` backend."""

from pathlib import Path

import pytest

from selah.analyzers.huggingface import SETTINGS
from tests.selah.analyzers.legacy_models import write_tiny_models
from tests.selah.analyzers.llm_server import MODEL, ScriptedServer


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """The four tiny legacy models by role, built once per session."""
    return write_tiny_models(tmp_path_factory.mktemp("hf-legacy"))


@pytest.fixture
def legacy_model_settings(tiny_models) -> dict:
    """Settings of the `huggingface` backend on the tiny models (the contract suite uses them)."""
    return {"HF_DEVICE": "cpu", **{SETTINGS[role]: str(path) for role, path in tiny_models.items()}}


@pytest.fixture
def llm_server():
    """A fresh scripted chat-completions server on loopback, closed after the test."""
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


@pytest.fixture
def llm_server_settings(llm_server) -> dict:
    """Settings of the `llm` backend on the scripted server (the contract suite uses them)."""
    return {"LLM_API_BASE_URL": llm_server.url, "LLM_MODEL": MODEL, "LLM_TIMEOUT_SECONDS": 5.0,
            "LLM_MAX_RETRIES": 1}
