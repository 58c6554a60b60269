"""Helpers and fixtures shared by the app tests: jobs over stored songs, the tiny legacy models of
the `huggingface` backend, and the scripted server of the `llm` backend."""

from pathlib import Path

import pytest

from app.extensions import db
from app.models import Song
from app.runners import job_service
from app.services.analysis import lyrics_hash
from app.services.analyzers.huggingface import SETTINGS
from tests.app.legacy_models import write_tiny_models
from tests.app.llm_server import MODEL, ScriptedServer


def songs_job(app, n: int) -> int:
    """Store `n` new songs and submit a job over them; returns the job id."""
    with app.app_context():
        ids = []
        for i in range(n):
            lyrics = f"Line {i}: I lift my voice to sing of grace and mercy"
            song = Song(title=f"S{i}", artist="A", lyrics=lyrics, lyrics_hash=lyrics_hash(lyrics))
            db.session.add(song)
            db.session.flush()
            ids.append(song.id)
        db.session.commit()
        job = job_service(app).create_songs_job(ids)
        app.extensions["selah.runner"].submit(job.id)
        job_id = job.id
        db.session.remove()
        return job_id


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
