"""The app factory: it builds from a config class, picks backend and runner by name, resolves the
database URL, and starts nothing in the background until `start_background`."""

import threading
from pathlib import Path

import pytest

from app import start_background
from selah.analyzers import BACKENDS


def _background_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(("selah-", "model-load"))}


def test_builds_from_a_config_subclass(make_app):
    """Every setting of the subclass reaches `app.config`; the extensions are attached."""
    app = make_app(MAX_BATCH_SIZE=7, LOG_LEVEL="WARNING")
    assert app.testing
    assert app.config["MAX_BATCH_SIZE"] == 7
    assert {"sqlalchemy", "migrate", "selah.model_store", "selah.runner", "selah.metrics"} <= set(
        app.extensions
    )
    migrations = Path(__file__).resolve().parents[2] / "migrations"
    assert app.extensions["migrate"].directory == str(migrations)
    assert app.test_client().get("/healthz").get_json() == {"status": "ok"}


def test_unknown_backend_fails_listing_the_valid_ones(make_app):
    """A misspelt ANALYZER_BACKEND stops start-up and says what would have worked."""
    with pytest.raises(ValueError, match="unknown ANALYZER_BACKEND 'gtposs'") as excinfo:
        make_app(ANALYZER_CLASS=None, ANALYZER_BACKEND="gtposs")
    for name in BACKENDS:
        assert name in str(excinfo.value)


def test_backend_is_chosen_by_name(make_app):
    """Without a test class, ANALYZER_BACKEND picks the store's backend."""
    app = make_app(ANALYZER_CLASS=None, ANALYZER_BACKEND="gptoss")
    assert app.extensions["selah.model_store"].backend_cls is BACKENDS["gptoss"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"JOB_RUNNER": "celery"}, r"unknown JOB_RUNNER 'celery'; valid: auto, thread, rq, none"),
        ({"JOB_RUNNER": "rq", "REDIS_URL": ""}, "JOB_RUNNER=rq needs REDIS_URL"),
    ],
)
def test_bad_job_runner_fails(make_app, overrides, message):
    """An unknown runner, or rq without Redis, stops start-up with a message."""
    with pytest.raises(ValueError, match=message):
        make_app(**overrides)


@pytest.mark.parametrize(
    ("overrides", "runner"),
    [
        ({"JOB_RUNNER": "auto", "REDIS_URL": ""}, "thread"),
        ({"JOB_RUNNER": "auto", "REDIS_URL": "redis://127.0.0.1:6379/15"}, "rq"),
        ({"JOB_RUNNER": "none"}, "none"),
    ],
)
def test_auto_runner_follows_redis_url(make_app, overrides, runner):
    """auto means RQ when REDIS_URL is set and threads otherwise (no connection is made here)."""
    assert make_app(**overrides).extensions["selah.runner"].name == runner


def test_factory_starts_nothing_until_start_background(make_app):
    """`flask db upgrade` builds the app on a fresh database: no thread may touch it first."""
    before = _background_threads()
    app = make_app(JOB_RUNNER="thread", ANALYZER_LOAD_ON_START=True)
    assert _background_threads() == before
    assert app.extensions["selah.model_store"].status == "not_initialized"

    start_background(app)
    started = {t.name for t in _background_threads() - before}
    assert {f"selah-job-{i}" for i in range(app.config["JOB_WORKER_THREADS"])} <= started


def test_default_database_is_sqlite_in_the_instance_folder(make_app):
    """An empty DATABASE_URL means the embedded file `<instance>/selah.db`."""
    app = make_app(DATABASE_URL="", create_tables=False)
    expected = Path(app.instance_path) / "selah.db"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{expected}"
    assert expected.parent.is_dir()


@pytest.mark.parametrize(
    ("url", "uri"),
    [
        ("postgres://u:pw@db.example:5432/selah",
         "postgresql+psycopg://u:pw@db.example:5432/selah"),
        ("postgresql://u@db.example/selah", "postgresql+psycopg://u@db.example/selah"),
        ("postgresql+psycopg://u@db.example/selah", "postgresql+psycopg://u@db.example/selah"),
        ("sqlite:////var/lib/selah/selah.db", "sqlite:////var/lib/selah/selah.db"),
    ],
)
def test_database_url_forms(make_app, url, uri):
    """Heroku-style `postgres://` and bare `postgresql://` URLs are served with psycopg 3."""
    app = make_app(DATABASE_URL=url, create_tables=False)
    assert app.config["SQLALCHEMY_DATABASE_URI"] == uri
