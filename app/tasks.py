"""RQ entry points: the task each queued song runs, and the worker class to run it with.

Start workers with `rq worker --url $REDIS_URL --worker-class app.tasks.SelahWorker selah`.
`SelahWorker` runs tasks in its own process (no fork per song), so the model loads once, and
on start it recovers the rows of workers that died and re-queues what is waiting.
"""

import logging

from flask import Flask
from rq.worker import SimpleWorker

from app.extensions import db
from app.services.jobs import worker_id

log = logging.getLogger(__name__)
_app: Flask | None = None


def set_app(app: Flask) -> None:
    """Use `app` for tasks in this process (tests and custom entry points)."""
    global _app
    _app = app


def get_app() -> Flask:
    """This process's app, built from the environment on first use."""
    global _app
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


def process_record(record_id: int) -> str:
    """Claim and analyse one queued song; returns model, cache, lost or skipped."""
    from app.runners import job_service

    app = get_app()
    worker = worker_id("rq")
    with app.app_context():
        try:
            service = job_service(app)
            if not service.analysis.claim(record_id, worker):
                return "skipped"  # done already, or another worker holds a live lease
            return service.run_record(record_id, worker)
        finally:
            db.session.remove()


class SelahWorker(SimpleWorker):
    """An RQ worker that builds the app once and sweeps stale work before it starts."""

    def work(self, *args, **kwargs):
        """Recover dead workers' rows, re-queue waiting ones, then work as usual."""
        from app.runners import RQRunner

        app = get_app()
        with app.app_context():
            try:
                # Every waiting row, not only those queued a lease ago: a worker killed between
                # taking a song's message and claiming its row lost that message, and the row
                # still looks freshly queued. Duplicates are harmless (claims are atomic).
                requeued = RQRunner(app).sweep(requeue_all=True)
                log.info("worker start: %d songs queued again", requeued)
            finally:
                db.session.remove()
        return super().work(*args, **kwargs)
