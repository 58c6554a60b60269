"""`selah.compat.SimplifiedChristianAnalysisService`: Selah's results returned and stored in a
host app's own tables (found through its Flask-SQLAlchemy registry), unchanged."""

import json

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from selah.analyzers.columns import legacy_columns
from selah.compat import HostTablesNotFound, SimplifiedChristianAnalysisService

host_db = SQLAlchemy()


class HostSong(host_db.Model):
    """A host's song table: `name` instead of `title`, as some web app versions have it."""

    __tablename__ = "tracks"
    id = host_db.Column(host_db.Integer, primary_key=True)
    name = host_db.Column(host_db.String(300), nullable=False)
    artist = host_db.Column(host_db.String(300), nullable=False)
    lyrics = host_db.Column(host_db.Text)


class HostAnalysis(host_db.Model):
    """A host's `analysis_results`: some JSON kept as text, naive timestamps, no v3.1 extras."""

    __tablename__ = "analysis_results"
    id = host_db.Column(host_db.Integer, primary_key=True)
    song_id = host_db.Column(host_db.Integer, host_db.ForeignKey("tracks.id"), nullable=False)
    user_id = host_db.Column(host_db.Integer)
    status = host_db.Column(host_db.String(20), nullable=False)
    score = host_db.Column(host_db.Float)
    concern_level = host_db.Column(host_db.String(50))
    explanation = host_db.Column(host_db.Text)
    themes = host_db.Column(host_db.JSON)
    concerns = host_db.Column(host_db.Text)
    supporting_scripture = host_db.Column(host_db.JSON)
    verdict = host_db.Column(host_db.String(50))
    confidence = host_db.Column(host_db.Float)
    needs_review = host_db.Column(host_db.Boolean)
    error_message = host_db.Column(host_db.Text)
    analyzed_at = host_db.Column(host_db.DateTime)


@pytest.fixture
def host(tmp_path, process_store):
    """A host Flask app on SQLite with two songs, in an app context; the fake backend serves."""
    process_store()
    app = Flask("host")
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'host.db'}"
    host_db.init_app(app)
    with app.app_context():
        host_db.create_all()
        host_db.session.add_all([
            HostSong(id=1, name="Quiet Waters", artist="Test Choir",
                     lyrics="Lead me by the quiet waters\nRestore my soul again"),
            HostSong(id=2, name="Ashes", artist="Test Band",
                     lyrics="Burn it all down tonight\nNothing left but ash and spite"),
        ])
        host_db.session.commit()
        yield app
        host_db.session.remove()


def test_the_legacy_calls_return_selahs_result_unchanged(process_store):
    process_store()
    service = SimplifiedChristianAnalysisService()
    assert service.ai_analyzer is service.hf_analyzer
    direct = service.hf_analyzer.analyze_song("Ashes", "Test Band", "Burn it all down tonight")
    result = service.analyze_song("Ashes", "Test Band", "Burn it all down tonight")
    assert result.to_dict()["scoring_results"] == direct.to_dict()["scoring_results"]
    assert result.biblical_analysis == direct.biblical_analysis
    content = service.analyze_song_content("Ashes", "Test Band", "Burn it all down tonight")
    assert content.get_final_score() == direct.get_final_score()
    batch = service.analyze_songs_batch([{"title": "Ashes", "artist": "Test Band",
                                          "lyrics": "Burn it all down tonight"}])
    assert batch[0].get_final_score() == direct.get_final_score()


def test_analyze_and_store_writes_every_column_the_host_has(host):
    service = SimplifiedChristianAnalysisService()
    row = service.analyze_and_store(2, user_id=5)
    expected = service.analyze_song("Ashes", "Test Band",
                                    "Burn it all down tonight\nNothing left but ash and spite")
    columns = legacy_columns(expected)
    assert row.status == "completed" and row.user_id == 5
    assert row.score == expected.get_final_score() == columns["score"]
    assert row.verdict == expected.model_analysis["framework"]["verdict"]
    assert row.confidence == columns["confidence"] and row.needs_review == columns["needs_review"]
    assert row.supporting_scripture == columns["supporting_scripture"]
    assert json.loads(row.concerns) == columns["concerns"]  # a text column gets JSON text
    assert row.analyzed_at is not None and row.analyzed_at.tzinfo is None


def test_a_stored_analysis_is_reused_unless_forced(host):
    service = SimplifiedChristianAnalysisService()
    first = service.analyze_and_store(1)
    assert service.analyze_and_store(1).id == first.id
    forced = service.analyze_and_store(1, force=True)
    assert forced.id != first.id and service.latest_analysis(1).id == forced.id
    assert host_db.session.query(HostAnalysis).count() == 2


def test_many_songs_are_stored_in_batches_in_order(host):
    service = SimplifiedChristianAnalysisService(batch_size=1)
    rows = service.analyze_and_store_many([2, 1, 2])
    assert [r.song_id for r in rows] == [2, 1, 2] and rows[0] is rows[2]
    assert host_db.session.query(HostAnalysis).count() == 2
    with pytest.raises(LookupError, match="song 99 not found"):
        service.analyze_and_store(99)


def test_an_error_result_is_stored_as_failed(host):
    service = SimplifiedChristianAnalysisService()
    result = service.hf_analyzer.analyze_songs_batch([{"title": "X", "lyrics": 7}])[0]
    row = service.store_result(1, result)
    assert row.status == "failed" and "lyrics must be a string" in row.error_message
    assert row.score == 0.0 and row.explanation.startswith("Analysis failed")


def test_without_flask_sqlalchemy_it_says_what_to_pass(process_store):
    process_store()
    with pytest.raises(HostTablesNotFound, match="session=, result_model="):
        SimplifiedChristianAnalysisService().analyze_and_store(1)
