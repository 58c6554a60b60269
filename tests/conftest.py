"""Shared fixtures: a test config, an app on a fresh database, a client, the fake analyzer."""

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

from app import create_app
from app.config import Config
from app.extensions import db
from tests.fake_analyzer import FakeAnalyzer


class TestConfig(Config):
    """Embedded SQLite in a temp folder, fake analyzer, no background threads unless asked."""

    TESTING = True
    ANALYZER_CLASS = FakeAnalyzer
    ANALYZER_LOAD_ON_START = False
    JOB_RUNNER = "none"
    ADMIN_TOKEN = "test-admin-token"
    JOB_POLL_SECONDS = 0.05
    JOB_LEASE_SECONDS = 30.0
    REDIS_URL = ""


def postgres_url() -> str | None:
    """TEST_POSTGRES_URL (CI sets it to the machine's server), or None."""
    return os.environ.get("TEST_POSTGRES_URL") or None


def redis_url() -> str | None:
    """TEST_REDIS_URL (CI sets it to the machine's server), or None."""
    return os.environ.get("TEST_REDIS_URL") or None


@pytest.fixture
def make_app(tmp_path):
    """Build apps from a TestConfig subclass with overrides; tables made with `create_all`."""
    built = []

    def factory(create_tables: bool = True, **overrides):
        attrs = {"DATABASE_URL": f"sqlite:///{tmp_path / 'test.db'}", **overrides}
        config = type("Cfg", (TestConfig,), attrs)
        app = create_app(config)
        if create_tables:
            with app.app_context():
                db.create_all()
        built.append(app)
        return app

    yield factory
    for app in built:
        app.extensions["selah.runner"].stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    """An app on a fresh SQLite database with the fake analyzer."""
    return make_app()


@pytest.fixture
def client(app):
    """A test client of `app`."""
    return app.test_client()


@pytest.fixture
def admin_headers():
    """The Authorization header the test config accepts."""
    return {"Authorization": f"Bearer {TestConfig.ADMIN_TOKEN}"}


@pytest.fixture
def pg_database():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    base = postgres_url()
    if base is None:
        pytest.skip("TEST_POSTGRES_URL not set")
    name = f"selah_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
