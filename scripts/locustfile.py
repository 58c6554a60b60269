"""Mixed traffic for `scripts/load_test.py` (locust): what the web app and its users send.

- single analyses (`POST /api/analyze`): half of them songs seen before (the cache answers),
  half a new variant of a song (one line added, so the model runs);
- small inline batches (`POST /api/analyze/batch`, 5 songs, new variants);
- playlist jobs: a playlist of 10 new variants registered and analysed in the background,
  then polled (`GET /api/jobs/<id>`, the legacy playlist status) until it finishes;
- status polls and readiness (`/readyz`, `/api/analysis/status`).

Songs come from the JSON lines file in SELAH_LOAD_SONGS (title, artist, lyrics); the songs the
service analysed are counted per kind and written to SELAH_LOAD_COUNTS when the run stops.
"""

import itertools
import json
import os
import random
import threading
import time

from locust import HttpUser, between, events, task

SONGS = [json.loads(line) for line in open(os.environ["SELAH_LOAD_SONGS"], encoding="utf-8")]
COUNTS = {"single_model": 0, "single_cached": 0, "batch": 0, "job": 0, "jobs_finished": 0,
          "jobs_failed_songs": 0}
_lock = threading.Lock()
_variant = itertools.count()
JOB_POLL_SECONDS = 1.0
JOB_WAIT_SECONDS = 300.0


def _count(kind: str, n: int = 1) -> None:
    with _lock:
        COUNTS[kind] += n


def _why(response) -> str:
    """What went wrong: the status and body, or the client's exception (status 0)."""
    if response.status_code == 0:
        return f"no response: {type(response.error).__name__}: {response.error}"
    return f"{response.status_code}: {response.text[:200]}"


def _song(new: bool) -> dict:
    song = random.choice(SONGS)
    lyrics = song["lyrics"]
    if new:  # a variant the service has not seen: the model must run
        lyrics = f"{lyrics}\nverse {next(_variant)} of the load test"
    return {"title": song["title"], "artist": song["artist"], "lyrics": lyrics}


class Listener(HttpUser):
    """One user of the web app."""

    wait_time = between(0.5, 2.0)

    @task(6)
    def analyze_one(self):
        new = random.random() < 0.5
        with self.client.post("/api/analyze", json=_song(new), name="POST /api/analyze",
                              catch_response=True) as response:
            if response.status_code == 200:
                _count("single_model" if new else "single_cached")
                response.success()
            else:
                response.failure(_why(response))

    @task(2)
    def analyze_batch(self):
        songs = [_song(True) for _ in range(5)]
        with self.client.post("/api/analyze/batch", json={"songs": songs},
                              name="POST /api/analyze/batch", catch_response=True) as response:
            if response.status_code == 200 and response.json()["count"] == len(songs):
                _count("batch", len(songs))
                response.success()
            else:
                response.failure(_why(response))

    @task(1)
    def playlist_job(self):
        songs = [_song(True) for _ in range(10)]
        created = self.client.post("/api/playlists", name="POST /api/playlists",
                                   json={"name": f"Load {next(_variant)}", "songs": songs})
        if created.status_code != 201:
            return
        playlist_id = created.json()["id"]
        started = self.client.post(f"/api/playlists/{playlist_id}/analyze",
                                   name="POST /api/playlists/<id>/analyze")
        if started.status_code not in (200, 202):
            return
        job_id = started.json()["job_id"]
        deadline = time.monotonic() + JOB_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(JOB_POLL_SECONDS)
            self.client.get(f"/api/playlists/{playlist_id}/analysis-status",
                            name="GET /api/playlists/<id>/analysis-status")
            with self.client.get(f"/api/jobs/{job_id}", name="GET /api/jobs/<id>",
                                 catch_response=True) as polled:
                if polled.status_code != 200:
                    polled.failure(_why(polled))
                    continue
                job = polled.json()
                polled.success()
                if job["status"] in ("completed", "failed"):
                    _count("job", job["counts"]["completed"])
                    _count("jobs_failed_songs", job["counts"]["failed"])
                    _count("jobs_finished")
                    return
        events.request.fire(request_type="JOB", name="playlist job finished", response_time=0,
                            response_length=0, exception=TimeoutError("job did not finish"))

    @task(2)
    def poll_status(self):
        self.client.get("/readyz", name="GET /readyz")
        self.client.get("/api/analysis/status", name="GET /api/analysis/status")


@events.test_stop.add_listener
def _write_counts(**_kwargs):
    path = os.environ.get("SELAH_LOAD_COUNTS")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(COUNTS, out)
