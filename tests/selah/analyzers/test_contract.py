"""The contract's routes and result shape, run the same way over every backend in `BACKENDS`.

Each backend is built by name (`ANALYZER_BACKEND`) from its own settings, as a deployment would:
`gptoss` on a tiny INT8 checkpoint, `huggingface` on tiny random models of the four legacy
architectures, `llm` against a loopback HTTP server answering as a chat-completions API. The checks
are the contract's (shared/spec/contract.md), not any one backend's: every hard-indexed key, the
legacy route bodies, a background playlist job, readiness.
"""

import pytest

from selah.analyzers import BACKENDS
from tests.app.api.support import LYRICS, OTHER_LYRICS, song_body, wait_for

SEVERITIES = {"low", "medium", "high", "critical"}
CATEGORIES = {"core_gospel", "character_spiritual", "negative", "general_christian"}
CONCERN_LEVELS = {"very_low", "low", "medium", "high", "unknown"}
QUALITY_LEVELS = {"Very Low", "Low", "Medium", "High", "Instrumental", "No Lyrics Available",
                  "Unknown"}
FRAMEWORK_KEYS = {"verdict", "recommendation", "verdict_probabilities", "formation_risk",
                  "narrative_voice", "lament_filter_applied", "confidence", "needs_review",
                  "doctrinal_clarity"}
DOCTRINAL_CLARITIES = {"clear", "mixed", "unclear", "none"}


def gptoss_settings(request) -> dict:
    return {"GPTOSS_MODEL_PATH": str(request.getfixturevalue("int8_checkpoint")),
            "GPTOSS_DEVICE": "cpu"}


# Backend name -> its settings, built from fixtures (the other backends' test modules define them).
SETTINGS = {"gptoss": gptoss_settings}
for name, fixture in (("huggingface", "legacy_model_settings"), ("llm", "llm_server_settings")):
    if name in BACKENDS:
        SETTINGS[name] = lambda request, fixture=fixture: request.getfixturevalue(fixture)


def test_every_registered_backend_is_checked():
    assert set(SETTINGS) == set(BACKENDS)


@pytest.fixture(params=sorted(SETTINGS))
def backend_client(request, make_app):
    """A client of an app serving the backend by name, its model loaded, its runner started."""
    app = make_app(ANALYZER_CLASS=None, ANALYZER_BACKEND=request.param, JOB_RUNNER="thread",
                   **SETTINGS[request.param](request))
    app.extensions["selah.model_store"].get()
    app.extensions["selah.runner"].start()
    return app.test_client()


def check_result(data: dict, analysed: bool = True) -> None:
    """Every key of contract.md section 2 with its shape; `analysed`: went through the model."""
    scoring, biblical = data["scoring_results"], data["biblical_analysis"]
    content, model = data["content_analysis"], data["model_analysis"]
    assert 0 <= scoring["final_score"] <= 100
    assert isinstance(scoring["explanation"], str) and scoring["explanation"].strip()
    assert scoring["quality_level"] in QUALITY_LEVELS
    assert isinstance(scoring["component_scores"], dict)
    for key in ("verdict_summary", "formation_guidance"):
        assert isinstance(scoring[key], str)
    for key in ("theological_weighting", "formational_penalty"):
        assert isinstance(scoring[key], float)
    for theme in biblical["themes"]:
        assert {"theme", "score", "category", "points", "detection_method"} <= set(theme)
        assert 0 <= theme["score"] <= 1 and isinstance(theme["points"], int)
        assert theme["category"] in CATEGORIES
    for item in biblical["supporting_scripture"]:
        assert {"reference", "text", "theme"} <= set(item)
    assert biblical["biblical_themes_count"] == len(biblical["themes"])
    for flag in content["concern_flags"]:
        assert {"type", "category", "severity", "confidence", "description"} <= set(flag)
        assert flag["severity"] in SEVERITIES and 0 <= flag["confidence"] <= 1
    assert isinstance(content["safety_assessment"], dict)
    assert isinstance(content["total_penalty"], (int, float))
    assert content["concern_level"] in CONCERN_LEVELS
    assert isinstance(data["configuration_snapshot"], dict)
    if not analysed:
        return
    assert data["error_message"] is None, data["error_message"]
    for key in ("sentiment", "emotions", "content_safety"):
        distribution = model[key]
        assert distribution["scores"] and distribution["primary"]["label"] in {
            s["label"] for s in distribution["scores"]}
    assert isinstance(model["content_safety"]["is_toxic"], bool)
    assert FRAMEWORK_KEYS <= set(model["framework"])
    assert model["framework"]["doctrinal_clarity"] in DOCTRINAL_CLARITIES


def test_inline_analysis_and_batch(backend_client):
    one = backend_client.post("/api/analyze", json=song_body())
    assert one.status_code == 200
    check_result(one.get_json())
    songs = [song_body(title="A"), song_body(title="Quiet Interlude", lyrics=""),
             song_body(title="B", lyrics=OTHER_LYRICS, user_id=3)]
    batch = backend_client.post("/api/analyze/batch", json={"songs": songs}).get_json()
    assert [r["title"] for r in batch["results"]] == ["A", "Quiet Interlude", "B"]
    check_result(batch["results"][0])
    check_result(batch["results"][1], analysed=False)
    assert batch["results"][1]["scoring_results"]["quality_level"] == "Instrumental"
    check_result(batch["results"][2])


def test_a_stored_song_through_the_legacy_routes(backend_client):
    song = backend_client.post("/api/songs", json=song_body()).get_json()
    started = backend_client.post(f"/api/songs/{song['id']}/analyze")
    assert started.status_code == 200 and started.get_json()["success"] is True
    status = backend_client.get(f"/api/songs/{song['id']}/analysis-status").get_json()
    assert (status["completed"], status["status"], status["progress"]) == (True, "completed", 100)
    record = status["result"]
    assert 0 <= record["score"] <= 100 and record["concern_level"] in CONCERN_LEVELS
    assert isinstance(record["explanation"], str) and record["explanation"].strip()
    assert record["error_message"] is None
    analysis = backend_client.get(f"/api/song/{song['id']}/analysis").get_json()["analysis"]
    assert analysis["status"] == "completed" and 0 <= analysis["score"] <= 100
    assert analysis["verdict"] in {"freely_listen", "context_required", "caution_limit",
                                   "avoid_formation"}


def test_a_playlist_job_completes(backend_client):
    ids = [backend_client.post("/api/songs", json=song_body(title=t, lyrics=lyr)).get_json()["id"]
           for t, lyr in (("One", LYRICS), ("Two", OTHER_LYRICS))]
    playlist = backend_client.post("/api/playlists", json={"name": "Set", "song_ids": ids})
    playlist_id = playlist.get_json()["id"]
    started = backend_client.post(f"/api/playlists/{playlist_id}/analyze").get_json()
    assert (started["success"], started["eligible_songs"]) == (True, 2)
    url = f"/api/playlists/{playlist_id}/analysis-status"
    done = wait_for(lambda: (body := backend_client.get(url).get_json())["completed"] and body,
                    timeout=60)
    assert done["analyzed_count"] == 2 and done["detailed_status"]["failed"] == 0


def test_ready_with_the_backend_named(backend_client):
    ready = backend_client.get("/readyz")
    assert ready.status_code == 200
    info = backend_client.application.extensions["selah.model_store"].info()
    assert info["status"] == "ready"


def test_analyze_all_and_overall_progress(backend_client):
    for title, lyrics in (("One", LYRICS), ("Two", OTHER_LYRICS)):
        backend_client.post("/api/songs", json=song_body(title=title, lyrics=lyrics))
    started = backend_client.post("/api/analyze-all").get_json()
    assert (started["success"], started["queued_count"]) == (True, 2)
    done = wait_for(lambda: (body := backend_client.get("/api/analysis/status").get_json())
                    ["completed"] and body, timeout=60)
    assert (done["progress"], done["analyzed_count"], done["active"]) == (100.0, 2, False)


def test_admin_warm_and_diagnostics(backend_client, admin_headers):
    warm = backend_client.post("/api/admin/warm", headers=admin_headers)
    assert warm.status_code == 200 and warm.get_json()["success"] is True
    diagnostics = backend_client.get("/api/admin/diagnostics", headers=admin_headers).get_json()
    assert diagnostics["success"] is True and diagnostics["diagnostics"]
