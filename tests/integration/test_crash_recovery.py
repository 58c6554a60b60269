"""A job survives a worker killed with SIGKILL: every song ends completed exactly once.

Real processes: a worker (embedded threads, or an RQ `SelahWorker`) analyses a playlist with a
slow fake model, is killed mid-job, and a fresh worker resumes. Thread mode runs on SQLite and on
PostgreSQL; RQ mode on PostgreSQL and Redis.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AnalysisRecord, Job, Playlist, PlaylistSong, Song
from app.runners import job_service
from app.services.analysis import lyrics_hash
from tests.conftest import redis_url

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SONGS = 12


def _start_worker(args: list[str], delay: float, log: Path) -> subprocess.Popen:
    env = {**os.environ, "FAKE_DELAY": str(delay), "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "tests.integration.worker_main", *args],
                                   cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    process.log = log
    return process


def _counts(app, job_id: int) -> dict:
    with app.app_context():
        try:
            service = job_service(app)
            return {**service.job_counts(job_id), "job": service.get_job(job_id).status}
        finally:
            db.session.remove()


def _wait(app, job_id: int, until, timeout: float, worker: subprocess.Popen) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = _counts(app, job_id)
        if until(counts):
            return counts
        if worker.poll() is not None:
            raise AssertionError(f"worker exited early: {worker.log.read_text()[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out; counts {_counts(app, job_id)}")


def _playlist_job(app) -> int:
    with app.app_context():
        playlist = Playlist(name="Crash test")
        db.session.add(playlist)
        db.session.flush()
        for position in range(SONGS):
            lyrics = f"Verse {position}: we walk together through the valley and the light"
            song = Song(title=f"Song {position}", artist="Band", lyrics=lyrics,
                        lyrics_hash=lyrics_hash(lyrics))
            db.session.add(song)
            db.session.flush()
            db.session.add(PlaylistSong(playlist_id=playlist.id, song_id=song.id,
                                        position=position))
        db.session.commit()
        job = job_service(app).create_playlist_job(playlist.id)
        app.extensions["selah.runner"].submit(job.id)
        job_id = job.id
        db.session.remove()
        return job_id


def _kill_and_resume(app, job_id: int, worker_args: list[str], logs: Path) -> None:
    first = _start_worker(worker_args, delay=0.4, log=logs / "first.log")
    try:
        before = _wait(app, job_id, lambda c: c["completed"] >= 3, 60, first)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    at_kill = _counts(app, job_id)
    assert at_kill["completed"] < SONGS, f"the job finished before the kill: {before}"

    second = _start_worker(worker_args, delay=0.01, log=logs / "second.log")
    try:
        _wait(app, job_id, lambda c: c["completed"] == SONGS and c["job"] == "completed", 60,
              second)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)

    with app.app_context():
        per_song = db.session.execute(
            select(AnalysisRecord.song_id, func.count())
            .where(AnalysisRecord.status == "completed", AnalysisRecord.model_version == "fake-1")
            .group_by(AnalysisRecord.song_id)
        ).all()
        assert len(per_song) == SONGS
        assert {count for _, count in per_song} == {1}, "a song was completed twice"
        leftovers = db.session.scalar(select(func.count()).select_from(AnalysisRecord).where(
            AnalysisRecord.status != "completed"))
        assert leftovers == 0
        job = db.session.get(Job, job_id)
        assert job.status == "completed" and job.error_message is None
        db.session.remove()


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_thread_worker_killed_mid_job_resumes(make_app, tmp_path, request, database):
    url = (f"sqlite:///{tmp_path / 'crash.db'}" if database == "sqlite"
           else request.getfixturevalue("pg_database"))
    app = make_app(DATABASE_URL=url)
    job_id = _playlist_job(app)
    _kill_and_resume(app, job_id, ["thread", url], tmp_path)


@pytest.mark.postgres
@pytest.mark.redis
def test_rq_worker_killed_mid_job_resumes(make_app, pg_database, tmp_path):
    redis = redis_url()
    if redis is None:
        pytest.skip("TEST_REDIS_URL not set")
    queue = f"selah-test-{uuid.uuid4().hex[:8]}"
    app = make_app(DATABASE_URL=pg_database, JOB_RUNNER="rq", REDIS_URL=redis, RQ_QUEUE=queue)
    try:
        job_id = _playlist_job(app)
        assert len(app.extensions["selah.runner"].queue) == SONGS
        _kill_and_resume(app, job_id, ["rq", pg_database, redis, queue], tmp_path)
    finally:
        app.extensions["selah.runner"].queue.empty()
