"""schemathesis over the published OpenAPI document (`/api/openapi.json`): generated requests to
every operation, every check (no 500, status codes, content types, headers and bodies as the
document says, valid data accepted and invalid data refused). The document and the service
cannot drift apart while this passes.

The app is built when the module is collected (schemathesis reads the document then), on a SQLite
file of its own, with the fake analyzer and no job runner.
"""

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app import create_app
from app.extensions import db
from tests.app.api.support import LYRICS
from tests.conftest import TestConfig

_folder = Path(tempfile.mkdtemp(prefix="selah-fuzz-"))
atexit.register(shutil.rmtree, _folder, True)  # built at collection, so removed at exit
APP = create_app(type("FuzzConfig", (TestConfig,), {
    "DATABASE_URL": f"sqlite:///{_folder / 'fuzz.db'}", "JOB_RUNNER": "none"}))
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def stored_rows():
    """A few stored songs, a playlist and a job for the generated ids to find."""
    with APP.app_context():
        db.create_all()
    APP.extensions["selah.model_store"].get()
    client = APP.test_client()
    songs = [{"title": f"Song {i}", "artist": "Choir", "lyrics": f"{LYRICS} {i}"}
             for i in range(3)]
    playlist = client.post("/api/playlists", json={"name": "Fuzz", "songs": songs}).get_json()
    client.post(f"/api/playlists/{playlist['id']}/analyze")
    yield
    with APP.app_context():
        db.session.remove()
        db.engine.dispose()


@schema.parametrize()
@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_to_the_document(case, admin_headers):
    case.call_and_validate(headers=admin_headers)
