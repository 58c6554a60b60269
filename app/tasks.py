"""RQ entry points: the task each queued song runs, and the worker class to run it with.

Start workers with `rq worker --url $REDIS_URL --worker-class app.tasks.SelahWorker selah`.
`SelahWorker` runs tasks in its own process (no fork per song), so the model loads once; on start
it recovers the rows of workers that died and re-queues what is waiting, and it outlives a Redis
outage.
"""

import itertools
import logging
import time
import uuid

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
    """An RQ worker that builds the app once, sweeps stale work before it starts, and outlives a
    Redis outage.

    RQ's own loop retries a failed dequeue but quits on a Redis error anywhere else (writing a
    finished job's status, a heartbeat). This worker then waits for Redis to answer again and
    starts over under a new name: the song it was on is already stored in the database (or its
    claim lapses and it is re-queued), and the sweep on each start re-queues what the outage lost.
    It stops only when asked to (SIGTERM, SIGINT) or when a burst or job limit is reached.
    """

    REDIS_RETRY_SECONDS = (1, 2, 4, 8, 15)  # then every 15 s

    def work(self, *args, **kwargs):
        """Sweep, then work as usual; after a Redis outage, wait for Redis and work again."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        limited = any(kwargs.get(key) for key in ("burst", "max_jobs", "max_idle_time"))
        restarts = 0
        while True:
            self._sweep()
            started = time.monotonic()
            try:
                worked = super().work(*args, **kwargs)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                # RQ's loop ends by itself only on a stop signal, a limit or an error (which it
                # has logged).
                if self._stopping() or limited:
                    return worked
                reason = "its work loop stopped on an error"
            if self._stopping():
                return False
            log.warning("worker %s: %s; working again once Redis answers", self.name, reason)
            self._stop_pubsub()
            self._wait_for_redis()
            restarts = 0 if time.monotonic() - started > 60 else restarts + 1
            self._pause(restarts)
            self.name = uuid.uuid4().hex  # the old name's registration may outlive the outage

    def request_stop(self, signum, frame):
        """SIGTERM or SIGINT: remembered here, because RQ records a stop asked for while idle
        nowhere (it raises StopRequested, and its loop simply ends as it would on an error)."""
        self._stop_signalled = True
        super().request_stop(signum, frame)

    def _stopping(self) -> bool:
        return getattr(self, "_stop_signalled", False) or self._stop_requested

    def _sweep(self) -> None:
        from app.runners import RQRunner

        app = get_app()
        with app.app_context():
            try:
                # Every waiting row, not only those queued a lease ago: a worker killed between
                # taking a song's message and claiming its row lost that message, and the row
                # still looks freshly queued. Duplicates are harmless (claims are atomic).
                requeued = RQRunner(app).sweep(requeue_all=True)
                log.info("worker start: %d songs queued again", requeued)
            except Exception as exc:  # noqa: BLE001 - the service's sweeper queues them later
                log.warning("worker start: could not re-queue waiting songs (%s: %s)",
                            type(exc).__name__, exc)
            finally:
                db.session.remove()

    def _redis_answers(self) -> bool:
        try:
            return bool(self.connection.ping())
        except Exception:  # noqa: BLE001 - any failure to answer is "not yet"
            return False

    def _wait_for_redis(self) -> None:
        for attempt in itertools.count():
            if self._redis_answers():
                return
            self._pause(attempt)

    def _pause(self, attempt: int) -> None:
        """Sleep the `attempt`-th backoff of REDIS_RETRY_SECONDS (its last, from then on)."""
        time.sleep(self.REDIS_RETRY_SECONDS[min(attempt, len(self.REDIS_RETRY_SECONDS) - 1)])

    def _stop_pubsub(self) -> None:
        thread = getattr(self, "pubsub_thread", None)
        if thread is not None:
            thread.stop()
            thread.join(timeout=1)
            self.pubsub_thread = None
