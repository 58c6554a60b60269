"""Fixtures for the route tests: stored songs and playlists, row counts, the fake's calls."""

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AnalysisRecord, utcnow
from tests.app.api.support import LYRICS, OTHER_LYRICS, TABLES, THIRD_LYRICS, song_body, warm
from tests.fake_analyzer import FakeAnalyzer


@pytest.fixture
def create_song(client):
    """Store a song through the API; returns its JSON (with `id`)."""

    def create(**overrides) -> dict:
        response = client.post("/api/songs", json=song_body(**overrides))
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return create


@pytest.fixture
def create_playlist(client, create_song):
    """Store a playlist of `n` new songs with distinct lyrics; returns its JSON."""

    def create(n: int = 2, name: str = "Sunday Set") -> dict:
        lyrics = [LYRICS, OTHER_LYRICS, THIRD_LYRICS]
        ids = [create_song(title=f"Song {i}", lyrics=f"{lyrics[i % 3]} (verse {i})")["id"]
               for i in range(n)]
        response = client.post("/api/playlists", json={"name": name, "song_ids": ids})
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return create


@pytest.fixture
def row_counts(app):
    """Rows in every table, by table name (to check that a refused request stored nothing)."""

    def counts() -> dict:
        with app.app_context():
            return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
                    for model in TABLES}

    return counts


@pytest.fixture
def model_calls(app):
    """Songs the fake analyzer analysed since the test began (after `app` loaded its model).

    Loading a model runs one smoke song through it, so load other apps' models (`warm`) before
    counting on them.
    """
    warm(app)
    start = FakeAnalyzer.calls
    return lambda: FakeAnalyzer.calls - start


@pytest.fixture
def add_record(app):
    """Write an `analysis_results` row directly (states the API cannot produce on demand)."""

    def add(song_id: int, status: str, **values) -> int:
        with app.app_context():
            record = AnalysisRecord(song_id=song_id, status=status, model_version="fake-1",
                                    **values)
            if status == "in_progress":
                record.claimed_by = "elsewhere:1:thread-0"
                record.lease_expires_at = utcnow().replace(year=utcnow().year + 1)
            db.session.add(record)
            db.session.commit()
            return record.id

    return add
