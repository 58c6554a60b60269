"""Shared fixtures: a test config, an app on a fresh database, a client, the fake analyzer, the
shared data file, chat-template tokenizers, and tiny INT8 checkpoints (`tests/checkpoints.py`)."""

import os
import tempfile
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app import create_app
from app.config import Config
from app.extensions import db
from tests.checkpoints import export_checkpoint, export_checkpoint_at, write_tiny_student
from tests.fake_analyzer import FakeAnalyzer
from tests.training.gptoss_models import write_tiny_gptoss

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "tests" / "training" / "fixtures" / "templates"
# The bf16 runtime's row floors (`selah.floors`) go to a file of this run's own, shared with the
# processes it starts: a test never reads floors that another run or a service wrote.
os.environ["SELAH_FLOOR_CACHE"] = str(Path(tempfile.mkdtemp(prefix="selah-floors-"))
                                      / "bf16-row-floors.json")
# Likewise the scripture-quote index (`selah.quotes`): built once per run, read by its processes.
os.environ["SELAH_QUOTE_CACHE"] = str(Path(tempfile.mkdtemp(prefix="selah-quotes-"))
                                      / "scripture-quotes.pt")


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


def shared_data_dir() -> Path:
    """SELAH_DATA_DIR, or `../shared/data` beside the repository."""
    return Path(os.environ.get("SELAH_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_songs() -> Path:
    """The shared labelled data file; skips (fails in CI) when it is not there."""
    path = shared_data_dir() / "songs.jsonl"
    if not path.is_file():
        pytest.skip(f"shared data not found at {path} (set SELAH_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def make_tokenizer(tmp_path_factory):
    """`make_tokenizer("qwen3" | "gptoss")`: a small local tokenizer carrying that model's real
    chat template, saved to disk and loaded back through `selah.chat.load_tokenizer`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from selah.chat import load_tokenizer

    def build(family: str):
        folder = tmp_path_factory.mktemp(f"tokenizer-{family}")
        words = ["[UNK]", "<|im_start|>", "<|im_end|>", "<|start|>", "<|end|>", "<|message|>",
                 "<|channel|>", "<|return|>"]
        core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
        core.pre_tokenizer = pre_tokenizers.Whitespace()
        template = (TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8")
        PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]",
                                chat_template=template).save_pretrained(folder)
        return load_tokenizer(str(folder))

    return build


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory) -> Path:
    """A float tiny student folder (seed 0)."""
    return write_tiny_student(tmp_path_factory.mktemp("student") / "v1")


@pytest.fixture(scope="session")
def int8_checkpoint(tiny_student, tmp_path_factory) -> Path:
    """The INT8 checkpoint of `tiny_student` (read-only: tests copy it before changing it)."""
    out = tmp_path_factory.mktemp("checkpoints") / "v1"
    export_checkpoint(tiny_student, out)
    return out


@pytest.fixture(scope="session")
def int8_checkpoint_v2(tmp_path_factory) -> Path:
    """Another INT8 checkpoint, of a different random student (seed 1)."""
    root = tmp_path_factory.mktemp("checkpoints-v2")
    return export_checkpoint_at(write_tiny_student(root / "student", seed=1), root / "v2")


@pytest.fixture(scope="session")
def tiny_gptoss(tmp_path_factory) -> Path:
    """The folder of a tiny random gpt-oss backbone (hidden 64), built once per session."""
    return write_tiny_gptoss(tmp_path_factory.mktemp("tiny-gptoss"))
