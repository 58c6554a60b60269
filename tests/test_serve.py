"""`make serve`'s steps for real: boot.sh migrates a fresh database, then gunicorn serves it."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.config import Config

REPO = Path(__file__).resolve().parent.parent
TABLES = {"alembic_version", "songs", "playlists", "playlist_songs", "jobs", "analysis_results"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def _wait_for(predicate, what: str, proc: subprocess.Popen, logs: Path, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"boot.sh exited with {proc.returncode} before {what}:\n{logs.read_text()}")
        try:
            result = predicate()
        except OSError:  # not listening yet
            result = None
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{logs.read_text()}")


@pytest.mark.slow
def test_boot_migrates_then_serves(tmp_path):
    """A fresh SQLite file is migrated; /healthz answers 200; /readyz 503 says why (no model)."""
    port = _free_port()
    database = tmp_path / "selah.db"
    env = dict(os.environ)
    # Every setting explicitly blank (its default), so neither the caller's environment nor a
    # developer's .env changes what is tested.
    env.update({name: "" for name in vars(Config) if name.isupper()})
    env.update(
        DATABASE_URL=f"sqlite:///{database}",
        PORT=str(port),
        WEB_CONCURRENCY="1",  # gunicorn itself reads it too, and refuses a blank one
        GUNICORN_THREADS="4",
        GPTOSS_MODEL_PATH=str(tmp_path / "no-checkpoint"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    logs = tmp_path / "stdout.log"
    base = f"http://127.0.0.1:{port}"
    with logs.open("wb") as stdout:
        proc = subprocess.Popen(["./boot.sh"], cwd=REPO, env=env, stdout=stdout,
                                stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: _get(f"{base}/healthz")[0] == 200, "/healthz", proc, logs)

        def analyzer_failed():
            status, body = _get(f"{base}/readyz")
            payload = json.loads(body)
            return (status, payload) if payload["checks"]["analyzer"] == "failed" else None

        status, payload = _wait_for(analyzer_failed, "the model load to fail", proc, logs)
        assert status == 503
        assert payload["status"] == "not_ready"
        assert payload["checks"]["database"] == "ok"
        assert "no GPTOSS checkpoint" in payload["error"]["message"]
        assert "GPTOSS_MODEL_PATH" in payload["error"]["message"]

        with sqlite3.connect(database) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert TABLES <= tables
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    output = logs.read_text()
    # The migration ran, gunicorn used its config, and its logs and the app's went to stdout.
    assert "Running upgrade  -> " in output
    assert f"Listening at: http://127.0.0.1:{port}" in output  # loopback unless HOST says
    assert "GET /healthz" in output
    assert "analyzer gptoss not loaded" in output
