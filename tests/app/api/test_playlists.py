"""Playlists: registration, lookup, background analysis and its progress."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AnalysisRecord
from selah.analyzers.gptoss import GPTOSSChristianAnalyzer
from tests.app.api.support import LYRICS, OTHER_LYRICS, song_body, wait_for

JOB_STARTED_KEYS = {"success", "message", "total_songs", "eligible_songs", "analysis_type",
                    "job_id"}
PROGRESS_KEYS = {"success", "completed", "progress", "analyzed_count", "total_count", "message",
                 "playlist_id", "detailed_status"}


# -- registration and lookup ---------------------------------------------------------------------


def test_create_playlist_of_new_songs(client, row_counts):
    songs = [song_body(title="First"), song_body(title="Second", lyrics=OTHER_LYRICS, album="B")]
    response = client.post("/api/playlists",
                           json={"name": "Sunday Set", "description": "Morning", "songs": songs})
    assert response.status_code == 201
    playlist = response.get_json()
    assert (playlist["name"], playlist["description"], playlist["song_count"]) == (
        "Sunday Set", "Morning", 2)
    assert [s["title"] for s in playlist["songs"]] == ["First", "Second"]
    assert all(s["id"] >= 1 and "lyrics" not in s for s in playlist["songs"])
    assert row_counts()["songs"] == 2 and row_counts()["playlist_songs"] == 2
    assert client.get(f"/api/playlists/{playlist['id']}").get_json() == playlist


def test_create_playlist_of_stored_songs_keeps_order_and_drops_repeats(client, create_song):
    a, b, c = (create_song(title=t)["id"] for t in "ABC")
    response = client.post("/api/playlists", json={"name": "Mix", "song_ids": [c, a, c, b]})
    assert response.status_code == 201
    assert [s["id"] for s in response.get_json()["songs"]] == [c, a, b]


def test_empty_playlist_is_allowed(client):
    response = client.post("/api/playlists", json={"name": "Later", "song_ids": []})
    assert response.status_code == 201
    assert response.get_json()["song_count"] == 0


@pytest.mark.parametrize("body, songs", [({"name": "Mix"}, 0),
                                         ({"name": "Mix", "songs": [], "song_ids": []}, 0)])
def test_a_playlist_with_no_songs_is_empty(client, body, songs):
    response = client.post("/api/playlists", json=body)
    assert response.status_code == 201 and response.get_json()["song_count"] == songs


def test_stored_and_new_songs_together_stored_first(client, create_song):
    stored = create_song(title="Old")["id"]
    new = {"title": "New", "artist": "A", "lyrics": "a new song of morning light"}
    response = client.post("/api/playlists",
                           json={"name": "Mix", "song_ids": [stored], "songs": [new]})
    assert response.status_code == 201
    assert [s["title"] for s in response.get_json()["songs"]] == ["Old", "New"]
    assert response.get_json()["songs"][0]["id"] == stored


def test_unknown_song_ids_are_named_and_nothing_is_stored(client, create_song, row_counts):
    known = create_song()["id"]
    before = row_counts()
    response = client.post("/api/playlists",
                           json={"name": "Mix", "song_ids": [known, 9001, 9002, 9001]})
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "not_found"
    assert error["details"] == {"song_ids": [9001, 9002]}
    assert "9001" in error["message"] and "9002" in error["message"]
    assert row_counts() == before


@pytest.mark.parametrize("body, fields", [
    ({"songs": []}, ["name"]),
    ({"name": " ", "songs": []}, ["name"]),
    ({"name": "Mix", "songs": [{"title": "T"}]}, ["songs"]),
    ({"name": "Mix", "song_ids": ["1"]}, ["song_ids"]),
    ({"name": "Mix", "song_ids": [0]}, ["song_ids"]),
    ({"name": "Mix", "song_ids": [True]}, ["song_ids"]),
    ({"name": "Mix", "song_ids": 5}, ["song_ids"]),
    ({"name": "Mix", "song_ids": [], "owner": "me"}, ["owner"]),
    ({"name": "Mix", "song_ids": [], "description": "d" * 2001}, ["description"]),
])
def test_create_playlist_validation_stores_nothing(client, row_counts, body, fields):
    before = row_counts()
    response = client.post("/api/playlists", json=body)
    assert response.status_code == 422
    assert sorted(response.get_json()["error"]["details"]) == fields
    assert row_counts() == before


def test_a_bad_inline_song_stores_none_of_them(client, row_counts):
    songs = [song_body(), song_body(lyrics=5)]
    response = client.post("/api/playlists", json={"name": "Mix", "songs": songs})
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {
        "songs": {"1": {"lyrics": ["Not a valid string."]}}}
    assert row_counts()["songs"] == 0


def test_list_playlists(client, create_playlist):
    first, second = create_playlist(1, "One"), create_playlist(2, "Two")
    page = client.get("/api/playlists?per_page=1&page=2").get_json()
    assert (page["total"], page["page"], page["per_page"]) == (2, 2, 1)
    assert page["playlists"] == [second]
    assert client.get("/api/playlists").get_json()["playlists"] == [first, second]


@pytest.mark.parametrize("method, path", [
    ("get", "/api/playlists/{id}"), ("post", "/api/playlists/{id}/analyze"),
    ("post", "/analyze_playlist/{id}"), ("get", "/api/playlists/{id}/analysis-status"),
])
@pytest.mark.parametrize("playlist_id", [404, -2])
def test_unknown_playlist_is_a_404_naming_it(client, method, path, playlist_id):
    response = getattr(client, method)(path.format(id=playlist_id))
    assert response.status_code == 404
    body = response.get_json()
    assert body["error"]["details"] == {"playlist_id": playlist_id}
    assert f"playlist {playlist_id} not found" in body["error"]["message"]
    assert body.get("success", False) is False


# -- legacy: analysis ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/playlists/{id}/analyze", "/analyze_playlist/{id}"])
def test_analyze_playlist_stores_a_job_and_its_rows(app, client, create_playlist, model_calls,
                                                   path):
    playlist = create_playlist(3)
    response = client.post(path.format(id=playlist["id"]))
    assert response.status_code == 200
    body = response.get_json()
    assert JOB_STARTED_KEYS <= set(body)
    assert (body["success"], body["total_songs"], body["eligible_songs"],
            body["analysis_type"]) == (True, 3, 3, "batch_ml_async")
    with app.app_context():
        rows = db.session.scalars(
            select(AnalysisRecord).where(AnalysisRecord.job_id == body["job_id"])).all()
        assert sorted(r.song_id for r in rows) == sorted(s["id"] for s in playlist["songs"])
        assert {r.status for r in rows} == {"pending"}
    assert model_calls() == 0  # JOB_RUNNER=none: stored, not run
    job = client.get(f"/api/jobs/{body['job_id']}").get_json()
    assert (job["kind"], job["playlist_id"], job["status"]) == (
        "playlist", playlist["id"], "queued")

    # Already queued for this model: a second request queues nothing new.
    again = client.post(path.format(id=playlist["id"])).get_json()
    assert (again["total_songs"], again["eligible_songs"]) == (3, 0)


def test_playlist_status_shapes_and_one_decimal_progress(client, create_playlist):
    playlist = create_playlist(3)
    url = f"/api/playlists/{playlist['id']}/analysis-status"
    body = client.get(url).get_json()
    assert PROGRESS_KEYS <= set(body)
    assert (body["completed"], body["progress"], body["analyzed_count"], body["total_count"],
            body["playlist_id"]) == (False, 0.0, 0, 3, playlist["id"])
    assert body["detailed_status"] == {"completed": 0, "failed": 0, "pending": 0,
                                       "in_progress": 0, "not_started": 3}
    client.post(f"/api/songs/{playlist['songs'][0]['id']}/analyze")
    body = client.get(url).get_json()
    assert (body["progress"], body["analyzed_count"], body["completed"]) == (33.3, 1, False)
    client.post(f"/api/playlists/{playlist['id']}/analyze")
    body = client.get(url).get_json()
    assert body["detailed_status"]["pending"] == 2 and body["active"] is True


def test_playlist_analysis_runs_to_completion(make_app, client, create_playlist):
    playlist = create_playlist(3)
    started = client.post(f"/api/playlists/{playlist['id']}/analyze").get_json()
    url = f"/api/playlists/{playlist['id']}/analysis-status"
    assert client.get(url).get_json()["detailed_status"]["pending"] == 3

    worker = make_app(JOB_RUNNER="thread")
    worker.extensions["selah.runner"].start()
    done = wait_for(lambda: (body := client.get(url).get_json())["completed"] and body)
    assert (done["progress"], done["analyzed_count"], done["total_count"]) == (100.0, 3, 3)
    assert done["detailed_status"]["completed"] == 3
    job = wait_for(lambda: (j := client.get(f"/api/jobs/{started['job_id']}").get_json())
                   ["status"] == "completed" and j)
    assert job["counts"] == {"pending": 0, "in_progress": 0, "completed": 3, "failed": 0}
    assert job["progress"] == 100.0 and job["finished_at"]
    for song in playlist["songs"]:
        status = client.get(f"/api/songs/{song['id']}/analysis-status").get_json()
        assert status["status"] == "completed"


def test_analyze_playlist_with_the_thread_runner_submits_at_once(make_app, create_song):
    client = make_app(JOB_RUNNER="thread").test_client()
    client.application.extensions["selah.runner"].start()
    ids = [create_song(lyrics=LYRICS)["id"], create_song(lyrics=OTHER_LYRICS)["id"]]
    playlist = client.post("/api/playlists", json={"name": "Now", "song_ids": ids}).get_json()
    client.post(f"/analyze_playlist/{playlist['id']}", json={"force": True})
    url = f"/api/playlists/{playlist['id']}/analysis-status"
    assert wait_for(lambda: client.get(url).get_json()["completed"])


def test_analyze_playlist_with_no_model_is_a_legacy_503(make_app, tmp_path, create_playlist,
                                                        row_counts):
    playlist = create_playlist(1)
    before = row_counts()
    broken = make_app(ANALYZER_CLASS=GPTOSSChristianAnalyzer, GPTOSS_MODEL_PATH=str(tmp_path))
    response = broken.test_client().post(f"/api/playlists/{playlist['id']}/analyze")
    assert response.status_code == 503
    assert response.get_json()["success"] is False
    assert row_counts() == before
