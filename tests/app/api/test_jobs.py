"""Jobs: `GET /api/jobs/<id>`, and the legacy analyse-everything and overall progress routes."""

import pytest

from tests.app.api.support import OTHER_LYRICS, THIRD_LYRICS, wait_for

PROGRESS_KEYS = {"success", "active", "completed", "progress", "analyzed_count", "total_count",
                 "message"}
JOB_KEYS = {"id", "kind", "status", "playlist_id", "force", "model_version", "total_songs",
            "eligible_songs", "counts", "progress", "error_message", "created_at", "started_at",
            "finished_at"}


def test_analyze_all_queues_only_songs_not_yet_analysed(client, create_song):
    done = create_song()["id"]
    create_song(lyrics=OTHER_LYRICS)
    create_song(lyrics=THIRD_LYRICS)
    client.post(f"/api/songs/{done}/analyze")
    response = client.post("/api/analyze-all")
    assert response.status_code == 200
    body = response.get_json()
    assert {"success", "queued_count", "job_id", "message"} <= set(body)
    assert (body["success"], body["queued_count"], body["total_songs"]) == (True, 2, 3)
    job = client.get(f"/api/jobs/{body['job_id']}").get_json()
    assert JOB_KEYS <= set(job)
    assert (job["kind"], job["status"], job["eligible_songs"], job["progress"]) == (
        "all", "queued", 2, 0.0)
    assert job["counts"] == {"pending": 2, "in_progress": 0, "completed": 0, "failed": 0}
    assert job["model_version"] == "fake-1"
    assert client.post("/api/analyze-all", json={}).get_json()["queued_count"] == 0
    forced = client.post("/api/analyze-all", json={"force": True}).get_json()
    assert forced["queued_count"] == 1  # the two others are already queued


def test_analyze_all_with_nothing_to_do_is_a_completed_job(client):
    body = client.post("/api/analyze-all").get_json()
    assert body["queued_count"] == 0
    job = client.get(f"/api/jobs/{body['job_id']}").get_json()
    assert (job["status"], job["progress"], job["completed"]) == ("completed", 100.0, True)


@pytest.mark.parametrize("path", ["/api/analysis/status", "/api/analysis/progress"])
def test_overall_progress(client, create_song, path):
    empty = client.get(path).get_json()
    assert PROGRESS_KEYS <= set(empty)
    assert (empty["total_count"], empty["progress"], empty["active"]) == (0, 100.0, False)
    first = create_song()["id"]
    create_song(lyrics=OTHER_LYRICS)
    client.post(f"/api/songs/{first}/analyze")
    half = client.get(path).get_json()
    assert (half["analyzed_count"], half["total_count"], half["progress"], half["completed"],
            half["active"]) == (1, 2, 50.0, False, False)
    client.post("/api/analyze-all")
    queued = client.get(path).get_json()
    assert queued["active"] is True and queued["detailed_status"]["pending"] == 1


def test_overall_progress_reaches_completed(make_app, client, create_song):
    for lyrics in (OTHER_LYRICS, THIRD_LYRICS):
        create_song(lyrics=lyrics)
    job_id = client.post("/api/analyze-all").get_json()["job_id"]
    make_app(JOB_RUNNER="thread").extensions["selah.runner"].start()
    body = wait_for(lambda: (b := client.get("/api/analysis/status").get_json())["completed"]
                    and b)
    assert (body["progress"], body["analyzed_count"], body["active"]) == (100.0, 2, False)
    job = client.get(f"/api/jobs/{job_id}").get_json()
    assert job["status"] == "completed" and job["started_at"] and job["finished_at"]


@pytest.mark.parametrize("job_id", [31337, -1])
def test_unknown_job_is_a_404_naming_it(client, job_id):
    response = client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 404
    body = response.get_json()
    assert "success" not in body
    assert body["error"]["details"] == {"job_id": job_id}


def test_analyze_all_validation_is_a_legacy_422(client, row_counts):
    before = row_counts()
    response = client.post("/api/analyze-all", json={"force": "please"})
    assert response.status_code == 422
    assert response.get_json()["success"] is False
    assert row_counts() == before
