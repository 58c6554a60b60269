"""The Alembic migrations build exactly the models' schema on SQLite and PostgreSQL, and undo it."""

import ast

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import CheckConstraint, inspect, text
from sqlalchemy.exc import IntegrityError

from app import MIGRATIONS_DIR
from app.extensions import db
from app.models import AnalysisRecord, Song, utcnow

TABLES = {"songs", "playlists", "playlist_songs", "jobs", "analysis_results"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def migrated_app(database_url, make_app):
    """An app whose database was built by `flask db upgrade` (not `create_all`)."""
    app = make_app(create_tables=False, DATABASE_URL=database_url)
    with app.app_context():
        upgrade()
    return app


def _table_names() -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_builds_the_models_schema(migrated_app):
    """Autogenerate finds nothing to add, drop or alter between the migrated DB and the models."""
    with migrated_app.app_context(), db.engine.connect() as conn:
        assert _table_names() == TABLES
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []
        head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert (MIGRATIONS_DIR / "versions" / f"{head}_initial_schema.py").is_file()


def test_upgrade_builds_checks_and_foreign_key_actions(migrated_app):
    """What autogenerate does not compare: CHECK constraints and every FK's ON DELETE."""
    with migrated_app.app_context():
        inspector = inspect(db.engine)
        for table in db.metadata.sorted_tables:
            expected_checks = {c.name for c in table.constraints if isinstance(c, CheckConstraint)}
            found_checks = {c["name"] for c in inspector.get_check_constraints(table.name)}
            assert expected_checks <= found_checks, table.name

            expected_fks = {
                (tuple(fk.column_keys), fk.referred_table.name, fk.ondelete)
                for fk in table.foreign_key_constraints
            }
            found_fks = {
                (tuple(fk["constrained_columns"]), fk["referred_table"],
                 fk["options"].get("ondelete"))
                for fk in inspector.get_foreign_keys(table.name)
            }
            assert found_fks == expected_fks, table.name


@pytest.mark.parametrize(
    ("column", "value"),
    [("status", "done"), ("status", "COMPLETED"), ("score", 100.5), ("score", -1.0)],
)
def test_check_constraints_reject_bad_rows(migrated_app, column, value):
    """The database itself refuses an unknown status or a score outside 0-100."""
    with migrated_app.app_context():
        song = Song(title="Checked", artist="Selah", lyrics="la la", lyrics_hash="0" * 64)
        db.session.add(song)
        db.session.flush()
        now = utcnow()
        good = {"song_id": song.id, "status": "completed", "score": 80.0, "created_at": now,
                "updated_at": now}
        db.session.add(AnalysisRecord(**good))
        db.session.flush()  # the same row with a valid value goes in

        db.session.add(AnalysisRecord(**{**good, column: value}))
        with pytest.raises(IntegrityError, match="ck_analysis"):
            db.session.flush()
        db.session.rollback()


def test_downgrade_to_base_leaves_no_tables(migrated_app):
    """Downgrading to base drops every table; upgrading again rebuilds them."""
    with migrated_app.app_context():
        downgrade(revision="base")
        assert _table_names() == set()
        upgrade()
        assert _table_names() == TABLES


def test_migrations_do_not_import_the_app():
    """Revisions import only alembic and sqlalchemy: they name stored types, not app classes."""
    revisions = sorted((MIGRATIONS_DIR / "versions").glob("*.py"))
    assert revisions
    for path in revisions:
        tree = ast.parse(path.read_text())
        imported = {
            name.split(".")[0]
            for node in ast.walk(tree)
            for name in (
                [alias.name for alias in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
        }
        assert imported <= {"alembic", "sqlalchemy"}, path.name
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        assert "app" not in names, path.name
