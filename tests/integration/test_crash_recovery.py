"""A job survives a worker killed with SIGKILL: every song ends completed exactly once.

Real processes: a worker (embedded threads, or an RQ `SelahWorker`) analyses a playlist with a
slow fake model, is killed mid-job, and a fresh worker resumes. Thread mode runs on SQLite and on
PostgreSQL; RQ mode on PostgreSQL and Redis.
"""

import signal
import uuid
from pathlib import Path

import pytest

from tests.conftest import redis_url
from tests.integration.support import (assert_each_song_completed_once, counts, finished,
                                       playlist_job, start_worker, wait)

pytestmark = pytest.mark.slow
SONGS = 12


def _kill_and_resume(app, job_id: int, worker_args: list[str], logs: Path) -> None:
    first = start_worker(worker_args, delay=0.4, log=logs / "first.log")
    try:
        before = wait(app, job_id, lambda c: c["completed"] >= 3, 60, first)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    at_kill = counts(app, job_id)
    assert at_kill["completed"] < SONGS, f"the job finished before the kill: {before}"

    second = start_worker(worker_args, delay=0.01, log=logs / "second.log")
    try:
        wait(app, job_id, finished(SONGS), 60, second)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)
    assert_each_song_completed_once(app, SONGS, [job_id])


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_thread_worker_killed_mid_job_resumes(make_app, tmp_path, request, database):
    url = (f"sqlite:///{tmp_path / 'crash.db'}" if database == "sqlite"
           else request.getfixturevalue("pg_database"))
    app = make_app(DATABASE_URL=url)
    job_id = playlist_job(app, SONGS)
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
        job_id = playlist_job(app, SONGS)
        assert len(app.extensions["selah.runner"].queue) == SONGS
        _kill_and_resume(app, job_id, ["rq", pg_database, redis, queue], tmp_path)
    finally:
        app.extensions["selah.runner"].queue.empty()
