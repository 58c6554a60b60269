"""Job runners: worker threads inside the service (embedded default) or an RQ queue.

Both drive `JobService`; all state is in the database, so either survives a killed process: a
restarted service or worker recovers the dead one's rows and carries on.
"""

import logging
import threading
import time
from datetime import timedelta

from flask import Flask
from sqlalchemy.exc import InterfaceError, OperationalError

from app.extensions import db
from app.models import utcnow
from app.services.errors import summary
from app.services.jobs import JobService, worker_id
from selah.analyzers.base import AnalyzerUnavailable

log = logging.getLogger(__name__)


def job_service(app: Flask) -> JobService:
    """A `JobService` on the current session, with the app's store, metrics and settings."""
    return JobService(
        db.session,
        app.extensions["selah.model_store"],
        app.extensions.get("selah.metrics"),
        lease_seconds=app.config["JOB_LEASE_SECONDS"],
        max_attempts=app.config["JOB_MAX_ATTEMPTS"],
    )


class NullRunner:
    """Stores jobs and runs nothing (JOB_RUNNER=none: an external worker does the work)."""

    name = "none"

    def __init__(self, app: Flask):
        self.app = app

    def start(self) -> None:
        """Nothing to start."""

    def submit(self, job_id: int) -> None:
        """Nothing to do: the job's rows wait in the database."""

    def stop(self, timeout: float = 5.0) -> None:
        """Nothing to stop."""


class ThreadRunner(NullRunner):
    """`JOB_WORKER_THREADS` threads that claim and analyse rows, woken when a job arrives."""

    name = "thread"

    def __init__(self, app: Flask):
        super().__init__(app)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Recover what a dead process left, then start the worker threads."""
        if self._threads:
            return
        with self.app.app_context():
            try:
                job_service(self.app).recover_stale()
            finally:
                db.session.remove()
        for index in range(self.app.config["JOB_WORKER_THREADS"]):
            thread = threading.Thread(
                target=self._loop, args=(worker_id(f"thread-{index}"), index == 0),
                name=f"selah-job-{index}", daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def submit(self, job_id: int) -> None:
        """Wake the workers."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the threads to finish their current song and exit."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        self._stop.clear()

    def _loop(self, worker: str, sweeper: bool) -> None:
        poll = self.app.config["JOB_POLL_SECONDS"]
        sweep_every = max(self.app.config["JOB_LEASE_SECONDS"] / 4, poll)
        last_sweep = time.monotonic()
        held = None  # a row this thread claimed but could not finish: the database went away
        while not self._stop.is_set():
            with self.app.app_context():
                record_id = None
                try:
                    service = job_service(self.app)
                    if held is not None:  # the database is back: let any worker take it now
                        service.release(held, worker)
                        held = None
                    if sweeper and time.monotonic() - last_sweep >= sweep_every:
                        service.recover_stale()
                        last_sweep = time.monotonic()
                    service.store.get()  # don't claim songs while no model can analyse them
                    record_id = service.claim_next(worker)
                    if record_id is not None:
                        service.run_record(record_id, worker)
                        continue
                except AnalyzerUnavailable as exc:
                    log.debug("job worker waiting for the analyzer: %s", exc)
                    self._stop.wait(poll * 5)
                    continue
                except (OperationalError, InterfaceError) as exc:
                    held = record_id if record_id is not None else held
                    log.warning("job worker %s: database unavailable, retrying: %s", worker,
                                summary(exc))
                    self._stop.wait(poll * 5)
                    continue
                except Exception:  # noqa: BLE001 - a worker thread must survive any one song
                    log.exception("job worker %s failed; retrying", worker)
                finally:
                    db.session.remove()
            self._wake.wait(poll)
            self._wake.clear()


class RQRunner(NullRunner):
    """Puts one RQ job per song row on `RQ_QUEUE`; `rq worker` processes do the analysis."""

    name = "rq"

    def __init__(self, app: Flask):
        super().__init__(app)
        from redis import Redis
        from rq import Queue

        self.connection = Redis.from_url(app.config["REDIS_URL"])
        self.queue = Queue(app.config["RQ_QUEUE"], connection=self.connection)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the sweeper: it re-queues rows of dead workers and rows never queued."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._sweep_loop, name="selah-rq-sweeper",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the sweeper."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._stop.clear()

    def submit(self, job_id: int) -> None:
        """Queue every runnable row of the job. With Redis unreachable the job stays stored and
        the sweeper queues its rows once Redis answers again (it looks every lease / 4)."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        service = job_service(self.app)
        try:
            self._enqueue(service, service.runnable_records(job_id))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            service.session.rollback()
            log.warning("job %d stored but not queued (Redis unreachable: %s); the sweeper "
                        "queues it when Redis is back", job_id, exc)

    def sweep(self, requeue_all: bool = False) -> int:
        """Recover stale rows and queue any runnable row not queued within a lease (with
        `requeue_all`, every runnable row); how many."""
        service = job_service(self.app)
        service.recover_stale()
        lease = timedelta(seconds=self.app.config["JOB_LEASE_SECONDS"])
        since = utcnow() if requeue_all else utcnow() - lease
        record_ids = service.runnable_records(not_enqueued_since=since)
        self._enqueue(service, record_ids)
        return len(record_ids)

    def _enqueue(self, service: JobService, record_ids: list[int]) -> None:
        lease = self.app.config["JOB_LEASE_SECONDS"]
        for record_id in record_ids:
            # A duplicate message is harmless: the claim is atomic and done rows are skipped.
            self.queue.enqueue("app.tasks.process_record", record_id,
                               job_timeout=int(lease * 2) + 60, result_ttl=0, failure_ttl=86400)
        service.mark_enqueued(record_ids)

    def _sweep_loop(self) -> None:
        every = max(self.app.config["JOB_LEASE_SECONDS"] / 4, self.app.config["JOB_POLL_SECONDS"])
        while not self._stop.wait(every):
            with self.app.app_context():
                try:
                    self.sweep()
                except Exception as exc:  # noqa: BLE001 - keep sweeping through a Redis or DB blip
                    log.warning("RQ sweep failed, retrying: %s", summary(exc))
                finally:
                    db.session.remove()


RUNNERS = {"thread": ThreadRunner, "rq": RQRunner, "none": NullRunner}


def init_runner(app: Flask):
    """Pick the runner from JOB_RUNNER (auto: rq when REDIS_URL is set, else thread)."""
    name = app.config["JOB_RUNNER"]
    if name == "auto":
        name = "rq" if app.config["REDIS_URL"] else "thread"
    if name not in RUNNERS:
        raise ValueError(f"unknown JOB_RUNNER {name!r}; valid: auto, {', '.join(RUNNERS)}")
    if name == "rq" and not app.config["REDIS_URL"]:
        raise ValueError("JOB_RUNNER=rq needs REDIS_URL")
    runner = RUNNERS[name](app)
    app.extensions["selah.runner"] = runner
    return runner
