"""Job runners inside one process: the thread runner end to end, the RQ runner's queueing."""

import time
import uuid

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AnalysisRecord
from app.runners import RQRunner, job_service
from tests.app.conftest import songs_job as _songs_job
from tests.conftest import redis_url


def _wait_counts(app, job_id, until, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        with app.app_context():
            counts = job_service(app).job_counts(job_id)
            db.session.remove()
        if until(counts) or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def test_thread_runner_completes_a_job(make_app):
    app = make_app(JOB_RUNNER="thread")
    runner = app.extensions["selah.runner"]
    runner.start()
    job_id = _songs_job(app, 5)
    counts = _wait_counts(app, job_id, lambda c: c["completed"] == 5)
    assert counts == {"pending": 0, "in_progress": 0, "completed": 5, "failed": 0}
    runner.stop()


class _Unloadable:
    backend = "unloadable"

    @classmethod
    def from_config(cls, config):
        from selah.analyzers import AnalyzerUnavailable

        raise AnalyzerUnavailable("no checkpoint")

    @classmethod
    def preflight_config(cls, config):
        return False, "no checkpoint"


def test_thread_runner_leaves_songs_queued_while_no_model_loads(make_app):
    loader = make_app(JOB_RUNNER="none")
    job_id = _songs_job(loader, 2)
    app = make_app(JOB_RUNNER="thread", ANALYZER_CLASS=_Unloadable, create_tables=False)
    app.extensions["selah.runner"].start()
    time.sleep(0.5)
    with app.app_context():
        statuses = set(db.session.scalars(
            select(AnalysisRecord.status).where(AnalysisRecord.job_id == job_id)))
    assert statuses == {"pending"}


@pytest.mark.redis
def test_rq_runner_queues_each_song_once_until_its_lease_lapses(make_app):
    url = redis_url()
    if url is None:
        pytest.skip("TEST_REDIS_URL not set")
    app = make_app(JOB_RUNNER="rq", REDIS_URL=url, RQ_QUEUE=f"selah-test-{uuid.uuid4().hex[:8]}")
    runner: RQRunner = app.extensions["selah.runner"]
    try:
        _songs_job(app, 3)
        assert len(runner.queue) == 3
        with app.app_context():
            assert runner.sweep() == 0  # queued within the lease: not sent again
            db.session.remove()
        assert len(runner.queue) == 3
    finally:
        runner.queue.empty()
