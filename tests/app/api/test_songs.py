"""Stored songs: registration, listing, lookup, and the legacy per-song analysis routes."""

from datetime import datetime

import pytest

from app.services.analysis import lyrics_hash
from selah.analyzers.gptoss import GPTOSSChristianAnalyzer
from tests.app.api.support import LYRICS, song_body
from tests.fake_analyzer import FakeAnalyzer

ANALYSIS_KEYS = {  # contract section 4, GET /api/song/<id>/analysis
    "status", "score", "purity_score", "formation_risk", "doctrinal_clarity", "confidence",
    "needs_review", "verdict", "concern_level", "themes", "supporting_scripture",
    "biblical_themes", "concerns", "created_at",
}


class CrashesOnBreak(FakeAnalyzer):
    """Crashes on lyrics containing BREAK (the analyzer then reports, not raises)."""

    def _analyze_batch(self, items):
        if any("BREAK" in lyrics for _, _, lyrics, _ in items):
            raise RuntimeError("model crashed")
        return super()._analyze_batch(items)


# -- registration and lookup ---------------------------------------------------------------------


def test_create_song_returns_it_with_id_and_hash(client):
    response = client.post("/api/songs", json=song_body(album="Hymns Again"))
    assert response.status_code == 201
    song = response.get_json()
    assert song["id"] >= 1
    assert song["lyrics_hash"] == lyrics_hash(LYRICS)
    assert (song["title"], song["artist"], song["album"], song["lyrics"]) == (
        "Morning Mercy", "The Test Choir", "Hymns Again", LYRICS)
    assert datetime.fromisoformat(song["created_at"]).tzinfo is not None
    assert client.get(f"/api/songs/{song['id']}").get_json() == song


def test_a_song_may_have_empty_lyrics_and_no_album(client):
    response = client.post("/api/songs", json=song_body(title="Quiet Interlude", lyrics=""))
    assert response.status_code == 201
    assert response.get_json()["album"] is None


@pytest.mark.parametrize("overrides, field", [
    ({"title": None}, "title"),
    ({"title": ""}, "title"),
    ({"artist": 12}, "artist"),
    ({"album": "A" * 301}, "album"),
    ({"album": 3}, "album"),
    ({"lyrics": None}, "lyrics"),
    ({"lyrics": "x" * 20_001}, "lyrics"),
    ({"user_id": 1}, "user_id"),
    ({"id": 4}, "id"),
])
def test_create_song_validation_stores_nothing(client, row_counts, overrides, field):
    before = row_counts()
    response = client.post("/api/songs", json=song_body(**overrides))
    assert response.status_code == 422
    assert list(response.get_json()["error"]["details"]) == [field]
    assert row_counts() == before


def test_list_songs_is_paginated_without_lyrics(client, create_song):
    ids = [create_song(title=f"Song {i}")["id"] for i in range(5)]
    page = client.get("/api/songs?page=2&per_page=2").get_json()
    assert (page["total"], page["page"], page["per_page"]) == (5, 2, 2)
    assert [s["id"] for s in page["songs"]] == ids[2:4]
    assert "lyrics" not in page["songs"][0]
    first = client.get("/api/songs?_=123").get_json()  # cache-busters are ignored
    assert (first["page"], first["per_page"], len(first["songs"])) == (1, 20, 5)
    assert client.get("/api/songs?page=9").get_json()["songs"] == []


@pytest.mark.parametrize("query, field", [
    ("page=0", "page"), ("page=x", "page"), ("per_page=0", "per_page"),
    ("per_page=101", "per_page"), ("per_page=-5", "per_page"),
])
def test_list_songs_rejects_bad_pages(client, query, field):
    response = client.get(f"/api/songs?{query}")
    assert response.status_code == 422
    assert list(response.get_json()["error"]["details"]) == [field]


def test_unknown_song_is_a_404_naming_it(client):
    response = client.get("/api/songs/4242")
    assert response.status_code == 404
    assert response.get_json()["error"] == {
        "code": "not_found", "message": "song 4242 not found", "details": {"song_id": 4242}}


# -- legacy: analyse one song ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/songs/{id}/analyze", "/api/analyze_song/{id}"])
def test_analyze_song_then_cache_then_force(client, create_song, model_calls, path):
    song = create_song()
    url = path.format(id=song["id"])
    first = client.post(url)
    assert first.status_code == 200
    body = first.get_json()
    assert {"success", "message", "song_id", "status", "cached", "analysis"} <= set(body)
    assert (body["success"], body["song_id"], body["status"], body["cached"]) == (
        True, song["id"], "completed", False)
    assert body["analysis"]["result"]["scoring_results"]["explanation"]
    assert body["analysis"]["score"] == body["analysis"]["result"]["scoring_results"]["final_score"]
    assert model_calls() == 1

    again = client.post(url, json={})
    assert again.get_json()["cached"] is True
    assert again.get_json()["analysis"]["id"] == body["analysis"]["id"]
    assert model_calls() == 1

    forced = client.post(url, json={"force": True})
    assert forced.status_code == 200
    assert forced.get_json()["cached"] is False
    assert forced.get_json()["analysis"]["id"] != body["analysis"]["id"]
    assert model_calls() == 2


def test_analyze_song_accepts_no_body_and_any_empty_content_type(client, create_song):
    song = create_song()
    for kwargs in ({}, {"content_type": "application/json"},
                   {"content_type": "application/x-www-form-urlencoded"}):
        assert client.post(f"/api/songs/{song['id']}/analyze", **kwargs).status_code == 200


def test_two_songs_with_the_same_lyrics_share_one_model_call(client, create_song, model_calls):
    one, two = create_song(title="One"), create_song(title="Two", lyrics=LYRICS.upper())
    client.post(f"/api/songs/{one['id']}/analyze")
    body = client.post(f"/api/songs/{two['id']}/analyze").get_json()
    assert body["status"] == "completed" and body["cached"] is True
    assert body["analysis"]["from_cache"] is True
    assert model_calls() == 1


def test_analyze_song_busy_is_202(client, create_song, add_record):
    song = create_song()
    record_id = add_record(song["id"], "in_progress")
    response = client.post(f"/api/songs/{song['id']}/analyze")
    assert response.status_code == 202
    body = response.get_json()
    assert (body["success"], body["status"], body["cached"]) == (True, "in_progress", False)
    assert body["analysis"]["id"] == record_id


@pytest.mark.parametrize("path", ["/api/songs/{id}/analyze", "/api/analyze_song/{id}"])
@pytest.mark.parametrize("song_id", [999, -1, 0, 10**30])
def test_analyze_unknown_song_is_a_legacy_404(client, path, song_id):
    response = client.post(path.format(id=song_id))
    assert response.status_code == 404
    body = response.get_json()
    assert body["success"] is False
    assert body["error"]["code"] == "not_found"
    assert str(song_id) in body["message"]
    assert body["error"]["details"] == {"song_id": song_id}


@pytest.mark.parametrize("body, field", [
    ({"force": "sometimes"}, "force"), ({"force": [True]}, "force"), ({"hurry": True}, "hurry"),
])
def test_analyze_song_validation_is_a_legacy_422(client, create_song, row_counts, body, field):
    song = create_song()
    before = row_counts()
    response = client.post(f"/api/songs/{song['id']}/analyze", json=body)
    assert response.status_code == 422
    assert response.get_json()["success"] is False
    assert list(response.get_json()["error"]["details"]) == [field]
    assert row_counts() == before


def test_analyze_song_with_no_model_is_a_legacy_503(make_app, tmp_path, create_song):
    song = create_song()
    broken = make_app(ANALYZER_CLASS=GPTOSSChristianAnalyzer, GPTOSS_MODEL_PATH=str(tmp_path))
    response = broken.test_client().post(f"/api/songs/{song['id']}/analyze")
    assert response.status_code == 503
    body = response.get_json()
    assert body["success"] is False
    assert "no GPTOSS checkpoint" in body["message"]


def test_a_failed_analysis_is_reported_not_raised(make_app):
    client = make_app(ANALYZER_CLASS=CrashesOnBreak).test_client()
    song = client.post("/api/songs", json=song_body(lyrics="BREAK " + LYRICS)).get_json()
    response = client.post(f"/api/songs/{song['id']}/analyze")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["success"], body["status"], body["cached"]) == (False, "failed", False)
    assert "model crashed" in body["message"]
    assert body["analysis"]["result"]["scoring_results"]["explanation"]
    status = client.get(f"/api/songs/{song['id']}/analysis-status").get_json()
    assert (status["status"], status["failed"], status["success"]) == ("failed", True, False)
    assert "model crashed" in status["error"]


# -- legacy: status ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/songs/{id}/analysis-status",
                                  "/api/song_analysis_status/{id}"])
def test_status_not_started_then_completed(client, create_song, path):
    song = create_song()
    url = path.format(id=song["id"])
    none = client.get(url).get_json()
    assert none == {"success": True, "song_id": song["id"], "completed": False,
                    "has_analysis": False, "status": "not_started", "progress": 0,
                    "stage": "not_started", "message": none["message"]}
    client.post(f"/api/songs/{song['id']}/analyze")
    done = client.get(url).get_json()
    assert {"success", "completed", "has_analysis", "status", "progress", "stage", "score",
            "concern_level", "message", "result", "analysis"} <= set(done)
    assert (done["success"], done["completed"], done["has_analysis"], done["status"],
            done["progress"]) == (True, True, True, "completed", 100)
    assert done["score"] == done["result"]["score"] == done["analysis"]["score"]
    assert done["concern_level"] in ("very_low", "low", "medium", "high")
    assert done["analysis"]["result"]["scoring_results"]["final_score"] == done["score"]


@pytest.mark.parametrize("status, stage, progress", [("pending", "queued", 0),
                                                      ("in_progress", "analyzing", 50)])
def test_status_pending_covers_in_progress(client, create_song, add_record, status, stage,
                                           progress):
    song = create_song()
    add_record(song["id"], status)
    body = client.get(f"/api/songs/{song['id']}/analysis-status").get_json()
    assert body == {"success": True, "song_id": song["id"], "completed": False,
                    "has_analysis": False, "status": "pending", "progress": progress,
                    "stage": stage, "message": body["message"]}


def test_status_failed(client, create_song, add_record):
    song = create_song()
    add_record(song["id"], "failed", error_message="model exploded", score=0.0)
    response = client.get(f"/api/songs/{song['id']}/analysis-status")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["success"], body["completed"], body["failed"], body["status"], body["error"]) == (
        False, True, True, "failed", "model exploded")
    assert "model exploded" in body["message"]


def test_status_of_unknown_song_is_a_legacy_404(client):
    response = client.get("/api/songs/77/analysis-status")
    assert response.status_code == 404
    assert response.get_json()["success"] is False


# -- legacy: song and analysis ---------------------------------------------------------------


def test_song_analysis_null_then_filled(client, create_song):
    song = create_song(album="Hymns Again")
    body = client.get(f"/api/song/{song['id']}/analysis").get_json()
    assert body == {"song": {"id": song["id"], "name": "Morning Mercy", "artist": "The Test Choir",
                             "album": "Hymns Again", "lyrics": LYRICS},
                    "analysis": None}
    client.post(f"/api/songs/{song['id']}/analyze")
    analysis = client.get(f"/api/song/{song['id']}/analysis").get_json()["analysis"]
    assert ANALYSIS_KEYS <= set(analysis)
    assert analysis["status"] == "completed"
    assert analysis["verdict"] in ("freely_listen", "context_required", "caution_limit",
                                   "avoid_formation")
    assert analysis["purity_score"] == analysis["score"]
    assert analysis["themes"] and analysis["supporting_scripture"]


def test_song_analysis_of_unknown_song_is_a_legacy_404(client):
    response = client.get("/api/song/-3/analysis")
    assert response.status_code == 404
    assert response.get_json()["success"] is False
    assert response.get_json()["error"]["details"] == {"song_id": -3}
