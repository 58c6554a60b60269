"""A real worker process for crash tests: `python -m tests.integration.worker_main MODE DB [REDIS QUEUE]`.

MODE `thread` runs the service's embedded worker threads; MODE `rq` runs `SelahWorker` on the
queue. Both use the fake analyzer (FAKE_DELAY seconds a song) and run until killed.
"""

import faulthandler
import os
import signal
import sys
import time

from app import create_app, start_background
from tests.conftest import TestConfig


def main(argv: list[str]) -> None:
    """Build the app for `argv` and work until killed. SIGUSR1 prints every thread's stack."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    mode, database_url = argv[0], argv[1]
    settings = {"DATABASE_URL": database_url, "JOB_RUNNER": mode, "JOB_WORKER_THREADS": 2}
    for name in ("JOB_LEASE_SECONDS", "JOB_POLL_SECONDS"):  # fault tests shorten them
        if os.environ.get(name):
            settings[name] = float(os.environ[name])
    if mode == "rq":
        settings.update(REDIS_URL=argv[2], RQ_QUEUE=argv[3])
    app = create_app(type("WorkerConfig", (TestConfig,), settings))
    if mode == "thread":
        start_background(app)
        while True:
            time.sleep(1)
    from app import tasks

    tasks.set_app(app)
    runner = app.extensions["selah.runner"]
    worker = tasks.SelahWorker([runner.queue], connection=runner.connection)
    worker.work(with_scheduler=False)


if __name__ == "__main__":
    main(sys.argv[1:])
