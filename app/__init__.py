"""Selah: the Flask app factory."""

import logging
import sys
from pathlib import Path

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.config import Config
from app.extensions import db, migrate

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def create_app(config_class: type = Config) -> Flask:
    """Build the app: settings, database, migrations, routes, errors, metrics, analyzer store.

    Nothing runs in the background until `start_background(app)` (wsgi.py and the worker entry
    points call it; `flask db upgrade` does not).
    """
    app = Flask(__name__)
    app.config.from_object(config_class)
    _configure_logging(app.config["LOG_LEVEL"])
    app.config["SQLALCHEMY_DATABASE_URI"] = _database_uri(app)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(app.config["SQLALCHEMY_DATABASE_URI"])

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)

    from app import models  # noqa: F401 - register the tables with the metadata
    from app.api import register_blueprints
    from app.errors import SelahApi, register_error_handlers
    from app.metrics import init_metrics
    from app.runners import init_runner
    from app.services.analysis import ResultCache
    from selah.analyzers.store import ModelStore

    api = SelahApi(app)
    register_blueprints(app, api)
    register_error_handlers(app)
    app.extensions["selah.model_store"] = ModelStore(_backend(app.config), app.config)
    app.extensions["selah.result_cache"] = ResultCache(app.config["RESULT_CACHE_SIZE"])
    init_metrics(app)
    init_runner(app)
    return app


def start_background(app: Flask) -> None:
    """Start what a serving process runs beside requests: model load, job workers, the model
    watcher (MODEL_WATCH_SECONDS) and the SIGHUP reload handler (main thread only)."""
    from selah.analyzers.store import ModelWatcher, install_sighup_reload

    store = app.extensions["selah.model_store"]
    if app.config["ANALYZER_LOAD_ON_START"]:
        store.load_in_background()
    app.extensions["selah.runner"].start()
    if app.config["MODEL_WATCH_SECONDS"] > 0 and "selah.model_watcher" not in app.extensions:
        app.extensions["selah.model_watcher"] = ModelWatcher(
            store, app.config["MODEL_WATCH_SECONDS"]).start()
    install_sighup_reload(store)


def _backend(config):
    from selah.analyzers import backend_class

    return config["ANALYZER_CLASS"] or backend_class(config["ANALYZER_BACKEND"])


def _database_uri(app: Flask) -> str:
    url = app.config["DATABASE_URL"]
    if not url:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{Path(app.instance_path) / 'selah.db'}"
    # Heroku-style and bare postgres URLs mean psycopg 3 here.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _engine_options(uri: str) -> dict:
    if uri.startswith("sqlite"):
        # Worker threads and the web share the file: wait for locks instead of failing at once.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """Foreign keys on (cascades) and WAL (readers don't block the writer) for SQLite."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_selah", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._selah = True
        root.addHandler(handler)
    root.setLevel(level)
