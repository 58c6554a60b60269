"""Input a hostile or careless client sends (issue 14's findings): each a 4xx in the JSON error
shape (422 for a field the schema refuses, 400 for a body that cannot be read, 404 for a URL
that names nothing), never a 500."""

import pytest

from app.fields import MAX_PAGE
from tests.app.api.support import song_body
from tests.app.services.test_hot_reload import _Disk


def assert_json_error(response, status: int) -> dict:
    """The one error shape, with `status`."""
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert set(body["error"]) >= {"code", "message"}
    return body["error"]


@pytest.mark.parametrize("query", ["page=9223372036854775807", f"page={MAX_PAGE + 1}",
                                   "page=4611686018427387904&per_page=100"])
@pytest.mark.parametrize("path", ["/api/songs", "/api/playlists"])
def test_a_page_past_a_64_bit_offset_is_refused(client, path, query):
    error = assert_json_error(client.get(f"{path}?{query}"), 422)
    assert error["code"] == "validation_error" and "page" in error["details"]


@pytest.mark.parametrize("path", ["/api/songs", "/api/playlists"])
def test_the_last_page_that_fits_is_an_empty_page(client, path):
    response = client.get(f"{path}?page={MAX_PAGE}&per_page=100")
    assert response.status_code == 200
    body = response.get_json()
    assert body[path.rsplit("/", 1)[1]] == [] and body["page"] == MAX_PAGE


@pytest.mark.parametrize("path, depth", [("/api/analyze", 20_000),
                                         ("/api/analyze/batch", 200_000)])
def test_a_body_nested_too_deeply_is_a_400(client, path, depth):
    body = "[" * depth + "]" * depth
    response = client.post(path, data=body, content_type="application/json")
    assert "nested too deeply" in assert_json_error(response, 400)["message"]


def test_bad_json_is_still_a_400_from_the_parser(client):
    response = client.post("/api/analyze", data="{not json", content_type="application/json")
    assert_json_error(response, 400)


@pytest.mark.parametrize("force", ["yes", "true", 1, 0, None, []])
def test_force_takes_json_booleans_only(client, force):
    response = client.post("/api/analyze", json={**song_body(), "force": force})
    assert "force" in assert_json_error(response, 422)["details"]


@pytest.mark.parametrize("force", [True, False])
def test_force_true_and_false_are_read(client, force):
    assert client.post("/api/analyze", json={**song_body(), "force": force}).status_code == 200


def test_an_empty_batch_with_a_non_boolean_force_is_refused(client):
    response = client.post("/api/analyze/batch", json={"force": 0, "songs": []})
    assert "force" in assert_json_error(response, 422)["details"]


@pytest.mark.parametrize("spelling", ["01", "001", "-01", "+1"])
def test_an_id_has_one_spelling(client, spelling):
    song = client.post("/api/songs", json=song_body()).get_json()
    assert song["id"] == 1
    assert client.get("/api/songs/1").status_code == 200
    assert_json_error(client.get(f"/api/songs/{spelling}"), 404)


def test_readyz_says_when_the_model_on_disk_was_refused(make_app):
    _Disk.disk = {"version": "v1", "broken": False}
    app = make_app(ANALYZER_CLASS=_Disk)
    store = app.extensions["selah.model_store"]
    store.get()
    client = app.test_client()
    assert "warning" not in client.get("/readyz").get_json()
    _Disk.disk = {"version": "v2", "broken": True}
    ok, _ = store.reload()
    assert not ok
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.get_json()
    assert body["status"] == "ready" and body["model_version"] == "v1"
    assert body["checks"]["model_on_disk"] == "refused"
    assert body["warning"].startswith("ready, serving v1; the model on disk was refused: ")
    assert "SHA-256" in body["warning"]
