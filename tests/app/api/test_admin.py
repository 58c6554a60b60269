"""Admin routes: token checks, diagnostics, warm, and model reload (accepted and refused)."""

import pytest

from selah.analyzers.base import AnalysisResult, AnalyzerUnavailable
from selah.analyzers.gptoss import GPTOSSChristianAnalyzer
from tests.app.api.support import LYRICS
from tests.fake_analyzer import FakeAnalyzer

ADMIN_ROUTES = [("get", "/api/admin/diagnostics"), ("post", "/api/admin/warm"),
                ("post", "/api/admin/model/reload")]
LEGACY = {"/api/admin/diagnostics", "/api/admin/warm"}


class UnloadableAnalyzer(FakeAnalyzer):
    """A checkpoint that cannot be loaded."""

    @classmethod
    def from_config(cls, config):
        """Fail as a broken checkpoint does."""
        raise AnalyzerUnavailable("checkpoint is corrupt: bad tensor shapes")


class WrongAnswersAnalyzer(FakeAnalyzer):
    """A checkpoint that loads but fails its smoke prediction."""

    def _analyze_batch(self, items):
        return [AnalysisResult.create_error(t, a, lyr, "NaN logits") for t, a, lyr, _ in items]


@pytest.mark.parametrize("method, path", ADMIN_ROUTES)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"},
                                     {"Authorization": "test-admin-token"},
                                     {"Authorization": "Basic dGVzdC1hZG1pbi10b2tlbg=="}])
def test_wrong_or_missing_token_is_401(client, method, path, headers):
    response = getattr(client, method)(path, headers=headers)
    assert response.status_code == 401
    body = response.get_json()
    assert body["error"]["code"] == "unauthorized"
    assert body.get("success", False) is False
    assert ("success" in body) == (path in LEGACY)


@pytest.mark.parametrize("method, path", ADMIN_ROUTES)
def test_no_configured_token_is_403(make_app, method, path):
    client = make_app(ADMIN_TOKEN="").test_client()
    response = getattr(client, method)(path, headers={"Authorization": "Bearer "})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert "ADMIN_TOKEN" in response.get_json()["error"]["message"]


def test_token_is_checked_before_the_body(client):
    response = client.post("/api/admin/warm", data=b"{not json", content_type="application/json")
    assert response.status_code == 401


def test_diagnostics(client, admin_headers, create_song):
    create_song()
    response = client.get("/api/admin/diagnostics", headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True
    diagnostics = body["diagnostics"]
    for key in ("analyzer", "preflight", "database", "runner", "songs", "jobs", "python",
                "platform", "limits"):
        assert key in diagnostics
    assert {"status", "models", "model_count", "analyzer_type"} <= set(diagnostics["analyzer"])
    assert diagnostics["analyzer"]["status"] == "not_initialized"  # diagnostics loads nothing
    assert diagnostics["database"] == {"dialect": "sqlite", "reachable": True}
    assert diagnostics["runner"] == "none"
    assert diagnostics["songs"]["total"] == 1
    assert diagnostics["preflight"]["ok"] is True
    assert diagnostics["limits"]["MAX_BATCH_SIZE"] == 500


def test_warm_loads_the_analyzer(app, client, admin_headers):
    response = client.post("/api/admin/warm", headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["success"], body["model_version"]) == (True, "fake-1")
    assert body["analyzer"]["status"] == "ready"
    assert body["analyzer"]["models"] == ["fake"]
    assert app.extensions["selah.model_store"].status == "ready"


def test_warm_without_a_model_is_a_legacy_503(make_app, tmp_path, admin_headers):
    client = make_app(ANALYZER_CLASS=GPTOSSChristianAnalyzer,
                      GPTOSS_MODEL_PATH=str(tmp_path)).test_client()
    response = client.post("/api/admin/warm", headers=admin_headers)
    assert response.status_code == 503
    body = response.get_json()
    assert body["success"] is False and "no GPTOSS checkpoint" in body["message"]
    diagnostics = client.get("/api/admin/diagnostics", headers=admin_headers).get_json()
    assert diagnostics["diagnostics"]["analyzer"]["status"] == "failed"
    assert diagnostics["diagnostics"]["preflight"]["ok"] is False


def test_reload_swaps_in_a_new_model_version(app, client, admin_headers):
    store = app.extensions["selah.model_store"]
    store.get()
    store.config["FAKE_MODEL_VERSION"] = "fake-2"
    response = client.post("/api/admin/model/reload", headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["success"], body["model_version"]) == (True, "fake-2")
    assert "fake-2" in body["message"]
    result = client.post("/api/analyze", json={"title": "T", "artist": "A", "lyrics": LYRICS})
    assert result.get_json()["configuration_snapshot"]["model_version"] == "fake-2"


@pytest.mark.parametrize("backend, reason", [(UnloadableAnalyzer, "checkpoint is corrupt"),
                                             (WrongAnswersAnalyzer, "NaN logits")])
def test_a_refused_model_leaves_the_old_one_serving(app, client, admin_headers, backend, reason):
    store = app.extensions["selah.model_store"]
    store.get()
    store.backend_cls = backend
    response = client.post("/api/admin/model/reload", headers=admin_headers)
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "model_refused"
    assert reason in error["message"]
    assert error["details"]["serving_model_version"] == "fake-1"
    assert store.status == "ready" and store.model_version == "fake-1"
    served = client.post("/api/analyze", json={"title": "T", "artist": "A", "lyrics": LYRICS})
    assert served.status_code == 200
    assert served.get_json()["configuration_snapshot"]["model_version"] == "fake-1"


def test_reload_with_no_model_at_all_is_refused(make_app, tmp_path, admin_headers):
    client = make_app(ANALYZER_CLASS=GPTOSSChristianAnalyzer,
                      GPTOSS_MODEL_PATH=str(tmp_path)).test_client()
    response = client.post("/api/admin/model/reload", headers=admin_headers)
    assert response.status_code == 409
    assert response.get_json()["error"]["details"]["serving_model_version"] is None
