"""`POST /api/analyze` and `/api/analyze/batch`: result shape, no-lyrics rule, cache, limits."""

from datetime import datetime

import pytest

from selah.analyzers.gptoss import GPTOSSChristianAnalyzer
from tests.app.api.support import LYRICS, OTHER_LYRICS, warm
from tests.fake_analyzer import FakeAnalyzer

RESULT_KEYS = {
    "title", "artist", "lyrics_text", "processed_text", "content_analysis", "biblical_analysis",
    "model_analysis", "scoring_results", "processing_time", "timestamp", "user_id",
    "analysis_version", "error_message", "configuration_snapshot", "recommendation",
}


def analyze(client, **overrides):
    """POST a valid song (with `overrides`) to /api/analyze."""
    body = {"title": "Morning Mercy", "artist": "The Test Choir", "lyrics": LYRICS, **overrides}
    return client.post("/api/analyze", json=body)


def test_analyze_returns_the_full_result_with_the_hard_indexed_keys(client):
    response = analyze(client, user_id=7)
    assert response.status_code == 200
    result = response.get_json()
    assert set(result) == RESULT_KEYS
    assert 0 <= result["scoring_results"]["final_score"] <= 100
    assert isinstance(result["scoring_results"]["explanation"], str)
    assert result["scoring_results"]["explanation"]
    assert result["title"] == "Morning Mercy" and result["user_id"] == 7
    assert result["error_message"] is None
    assert datetime.fromisoformat(result["timestamp"]).tzinfo is not None
    for key in ("sentiment", "emotions", "content_safety", "framework"):
        assert key in result["model_analysis"]


@pytest.mark.parametrize("title, score, level", [
    ("Quiet Interlude", 75.0, "Instrumental"),
    ("Evening Prayer Music", 75.0, "Instrumental"),
    ("OVERTURE in D", 75.0, "Instrumental"),
    ("Morning Mercy", 50.0, "No Lyrics Available"),
])
@pytest.mark.parametrize("lyrics", ["", "   ", "la la la"])
def test_no_lyrics_rule_through_the_route(client, model_calls, title, score, level, lyrics):
    response = analyze(client, title=title, lyrics=lyrics)
    assert response.status_code == 200
    scoring = response.get_json()["scoring_results"]
    assert (scoring["final_score"], scoring["quality_level"]) == (score, level)
    assert scoring["explanation"]
    assert model_calls() == 0


def test_inline_analysis_reuses_a_stored_songs_result_unless_forced(client, create_song,
                                                                    model_calls):
    song = create_song()
    assert client.post(f"/api/songs/{song['id']}/analyze").status_code == 200
    assert model_calls() == 1
    # Same lyrics after normalisation (case and whitespace): the cached analysis answers.
    cached = analyze(client, title="Another Title", lyrics="  " + LYRICS.upper() + "\n")
    assert cached.status_code == 200
    assert cached.get_json()["title"] == "Another Title"
    assert model_calls() == 1
    forced = analyze(client, lyrics=LYRICS, force=True)
    assert forced.status_code == 200
    assert model_calls() == 2
    assert forced.get_json()["scoring_results"] == cached.get_json()["scoring_results"]


def test_a_new_model_version_reanalyses(make_app, client, create_song):
    song = create_song()
    client.post(f"/api/songs/{song['id']}/analyze")
    newer = warm(make_app(FAKE_MODEL_VERSION="fake-2")).test_client()
    start = FakeAnalyzer.calls
    response = newer.post("/api/analyze", json={"title": "T", "artist": "A", "lyrics": LYRICS})
    assert response.status_code == 200
    assert response.get_json()["configuration_snapshot"]["model_version"] == "fake-2"
    assert FakeAnalyzer.calls - start == 1


def test_batch_keeps_order_and_counts(client):
    songs = [{"title": "One", "artist": "A", "lyrics": LYRICS},
             {"title": "Quiet Interlude", "artist": "B", "lyrics": ""},
             {"title": "Three", "artist": "C", "lyrics": OTHER_LYRICS, "user_id": 3}]
    response = client.post("/api/analyze/batch", json={"songs": songs})
    assert response.status_code == 200
    body = response.get_json()
    assert body["count"] == 3
    assert [r["title"] for r in body["results"]] == ["One", "Quiet Interlude", "Three"]
    assert body["results"][1]["scoring_results"]["quality_level"] == "Instrumental"
    assert body["results"][2]["user_id"] == 3
    assert all(set(r) == RESULT_KEYS for r in body["results"])


def test_empty_batch_is_an_empty_answer(client):
    response = client.post("/api/analyze/batch", json={"songs": []})
    assert response.status_code == 200
    assert response.get_json() == {"results": [], "count": 0}


def test_batch_limit_comes_from_the_config(make_app, row_counts):
    client = make_app(MAX_BATCH_SIZE=2).test_client()
    songs = [{"title": f"S{i}", "artist": "A", "lyrics": LYRICS} for i in range(3)]
    response = client.post("/api/analyze/batch", json={"songs": songs})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert "MAX_BATCH_SIZE" in error["details"]["songs"][0]
    assert client.post("/api/analyze/batch", json={"songs": songs[:2]}).status_code == 200


def test_inline_batch_has_a_character_budget_that_points_at_jobs(make_app, row_counts):
    client = make_app(INLINE_MAX_CHARS=3 * len(LYRICS)).test_client()
    songs = [{"title": f"S{i}", "artist": "A", "lyrics": LYRICS} for i in range(4)]
    response = client.post("/api/analyze/batch", json={"songs": songs})
    assert response.status_code == 422
    message = response.get_json()["error"]["details"]["songs"][0]
    assert "INLINE_MAX_CHARS" in message and f"got {4 * len(LYRICS)}" in message
    assert "POST /api/playlists" in message  # where work this big goes instead
    assert client.post("/api/analyze/batch", json={"songs": songs[:3]}).status_code == 200


def test_inline_batch_stops_at_its_time_budget_and_a_retry_carries_on(make_app, monkeypatch):
    from app.services import analysis

    monkeypatch.setattr(analysis, "INLINE_GROUP_CHARS", 1)  # one song a group
    app = warm(make_app(REQUEST_TIMEOUT_SECONDS=0.15, FAKE_DELAY=0.1))
    client = app.test_client()
    songs = [{"title": f"S{i}", "artist": "A", "lyrics": f"{LYRICS} verse {i}"} for i in range(6)]
    started = FakeAnalyzer.calls
    response = client.post("/api/analyze/batch", json={"songs": songs})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    error = response.get_json()["error"]
    assert error["code"] == "request_timeout" and "REQUEST_TIMEOUT_SECONDS" in error["message"]
    done = error["details"]["analysed"]
    assert 1 <= done < 6 and error["details"]["total"] == 6
    assert FakeAnalyzer.calls - started == done  # no group started after the budget was spent
    # The finished songs are cached: retries analyse only the rest, and the last one answers.
    for _ in range(6):
        response = client.post("/api/analyze/batch", json={"songs": songs})
        if response.status_code == 200:
            break
    assert response.status_code == 200 and response.get_json()["count"] == 6
    assert FakeAnalyzer.calls - started == 6  # every song analysed exactly once


def test_no_time_budget_runs_the_whole_batch(make_app):
    client = warm(make_app(REQUEST_TIMEOUT_SECONDS=0, FAKE_DELAY=0.02)).test_client()
    songs = [{"title": f"S{i}", "artist": "A", "lyrics": f"{LYRICS} {i}"} for i in range(5)]
    assert client.post("/api/analyze/batch", json={"songs": songs}).status_code == 200


def test_batch_names_the_bad_song_and_field(client):
    songs = [{"title": "Fine", "artist": "A", "lyrics": LYRICS}, {"title": "No artist",
                                                                  "lyrics": LYRICS}]
    response = client.post("/api/analyze/batch", json={"songs": songs})
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {
        "songs": {"1": {"artist": ["Missing data for required field."]}}}


@pytest.mark.parametrize("body, field", [
    ({"artist": "A", "lyrics": LYRICS}, "title"),
    ({"title": "T", "lyrics": LYRICS}, "artist"),
    ({"title": "T", "artist": "A"}, "lyrics"),
    ({"title": "", "artist": "A", "lyrics": LYRICS}, "title"),
    ({"title": "   ", "artist": "A", "lyrics": LYRICS}, "title"),
    ({"title": "T", "artist": "", "lyrics": LYRICS}, "artist"),
    ({"title": 5, "artist": "A", "lyrics": LYRICS}, "title"),
    ({"title": "T", "artist": ["A"], "lyrics": LYRICS}, "artist"),
    ({"title": "T", "artist": "A", "lyrics": None}, "lyrics"),
    ({"title": "T", "artist": "A", "lyrics": {"text": LYRICS}}, "lyrics"),
    ({"title": "T" * 301, "artist": "A", "lyrics": LYRICS}, "title"),
    ({"title": "T", "artist": "A" * 301, "lyrics": LYRICS}, "artist"),
    ({"title": "T", "artist": "A", "lyrics": "x" * 20_001}, "lyrics"),
    ({"title": "T", "artist": "A", "lyrics": LYRICS, "user_id": "7"}, "user_id"),
    ({"title": "T", "artist": "A", "lyrics": LYRICS, "user_id": -1}, "user_id"),
    ({"title": "T", "artist": "A", "lyrics": LYRICS, "force": "maybe"}, "force"),
    ({"title": "T", "artist": "A", "lyrics": LYRICS, "mood": "happy"}, "mood"),
])
def test_analyze_validation(client, model_calls, body, field):
    response = client.post("/api/analyze", json=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["details"]) == [field]
    assert field in error["message"]
    assert model_calls() == 0


def test_unstorable_characters_become_replacement_characters(client):
    body = {"title": "T\x00", "artist": "A", "lyrics": f"{LYRICS} bad \ud800 surrogate"}
    response = client.post("/api/analyze", json=body)
    assert response.status_code == 200
    result = response.get_json()
    assert result["title"] == "T\ufffd"
    assert result["lyrics_text"] == f"{LYRICS} bad \ufffd surrogate"


def test_limits_are_read_when_a_request_is_validated(app, client):
    app.config["MAX_LYRICS_LENGTH"] = 20
    response = client.post("/api/analyze", json={"title": "T", "artist": "A", "lyrics": LYRICS})
    assert response.status_code == 422
    assert "MAX_LYRICS_LENGTH" in response.get_json()["error"]["details"]["lyrics"][0]


def test_lyrics_at_the_limit_are_accepted(client):
    response = client.post("/api/analyze",
                           json={"title": "T" * 300, "artist": "A" * 300, "lyrics": "x" * 20_000})
    assert response.status_code == 200


@pytest.mark.parametrize("path, body", [
    ("/api/analyze", {"title": "T", "artist": "A", "lyrics": LYRICS}),
    ("/api/analyze/batch", {"songs": [{"title": "T", "artist": "A", "lyrics": LYRICS}]}),
])
def test_analyzer_unavailable_is_503_with_the_reason(make_app, tmp_path, path, body):
    empty = tmp_path / "no-checkpoint"
    empty.mkdir()
    client = make_app(ANALYZER_CLASS=GPTOSSChristianAnalyzer,
                      GPTOSS_MODEL_PATH=str(empty)).test_client()
    response = client.post(path, json=body)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    error = response.get_json()["error"]
    assert error["code"] == "analyzer_unavailable"
    assert "manifest.json is missing" in error["message"]
    assert str(empty) in error["message"]


def test_evidence_reaches_the_response_and_the_stored_row(make_app, int8_checkpoint):
    """Through the routes, on a real (tiny, random) checkpoint: the quoted verse first in
    supporting_scripture, evidence lines on every theme and concern, and the stored row's
    framework data keeping them."""
    from app.extensions import db
    from app.models import AnalysisRecord

    app = make_app(ANALYZER_CLASS=GPTOSSChristianAnalyzer, GPTOSS_DEVICE="cpu",
                   GPTOSS_MODEL_PATH=str(int8_checkpoint))
    client = app.test_client()
    lyrics = "The city never sleeps\nBe still, and know that I am God\nThe city never sleeps"
    result = analyze(client, lyrics=lyrics).get_json()
    scripture = result["biblical_analysis"]["supporting_scripture"]
    assert scripture[0]["reference"] == "Psalm 46:10" and scripture[0]["source"] == "quoted"
    assert scripture[0]["lines"] == [2]
    for item in result["biblical_analysis"]["themes"] + result["content_analysis"]["concern_flags"]:
        assert item["evidence"] and all(found["lines"] for found in item["evidence"])
    song = client.post("/api/songs", json={"title": "Still", "artist": "Test Band",
                                           "lyrics": lyrics}).get_json()
    assert client.post(f"/api/songs/{song['id']}/analyze").status_code == 200
    stored = client.get(f"/api/song/{song['id']}/analysis").get_json()["analysis"]
    assert stored["supporting_scripture"][0]["source"] == "quoted"
    with app.app_context():
        row = db.session.scalars(db.select(AnalysisRecord)).one()
        assert row.framework_data["evidence"]["quoted_scripture"] == {"Psalm 46:10": [2]}
