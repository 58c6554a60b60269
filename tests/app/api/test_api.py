"""What the blueprints share (`app/api/__init__.py`): the OpenAPI document, ids, JSON bodies."""

import pytest

from tests.app.api.support import LYRICS

SKIP_RULES = {"static", "api-docs.openapi_json"}
HEALTH = {"/healthz", "/readyz", "/metrics"}  # health.py documents no response schemas


def openapi_path(rule: str) -> str:
    """`/api/songs/<id:song_id>` as OpenAPI writes it: `/api/songs/{song_id}`."""
    parts = []
    for part in rule.split("/"):
        if part.startswith("<") and part.endswith(">"):
            part = "{" + part[1:-1].split(":")[-1] + "}"
        parts.append(part)
    return "/".join(parts)


@pytest.fixture
def spec(client):
    """The served OpenAPI document."""
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_every_route_is_documented(app, spec):
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP_RULES:
            continue
        path = openapi_path(rule.rule)
        assert path in spec["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][path], (method, path)


def test_every_operation_has_a_summary_and_response_schema(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters" or path in HEALTH:
                continue
            assert operation.get("summary"), (method, path)
            ok = [code for code in operation["responses"] if code.startswith("2")]
            assert ok, (method, path)
            for code in ok:
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema["$ref"].startswith("#/components/schemas/"), (method, path)


@pytest.mark.parametrize("path, schema, required", [
    ("/api/analyze", "Analyze", True),
    ("/api/analyze/batch", "BatchAnalyze", True),
    ("/api/songs", "SongCreate", True),
    ("/api/playlists", "PlaylistCreate", True),
    ("/api/songs/{song_id}/analyze", "Force", False),
    ("/api/analyze_song/{song_id}", "Force", False),
    ("/api/playlists/{playlist_id}/analyze", "Force", False),
    ("/analyze_playlist/{playlist_id}", "Force", False),
    ("/api/analyze-all", "Force", False),
])
def test_request_bodies_are_documented(spec, path, schema, required):
    body = spec["paths"][path]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"] == f"#/components/schemas/{schema}"
    assert body.get("required", False) is required


def test_schemas_carry_their_fields(spec):
    schemas = spec["components"]["schemas"]
    assert set(schemas["Analyze"]["required"]) == {"title", "artist", "lyrics"}
    assert "scoring_results" in schemas["AnalysisResult"]["properties"]
    assert schemas["Error"]["properties"]["error"]


@pytest.mark.parametrize("path", ["/api/admin/diagnostics", "/api/admin/warm",
                                  "/api/admin/model/reload"])
def test_admin_operations_declare_the_bearer_token(spec, path):
    (operation,) = (op for method, op in spec["paths"][path].items() if method != "parameters")
    assert operation["security"] == [{"AdminToken": []}]
    assert spec["components"]["securitySchemes"]["AdminToken"]["scheme"] == "bearer"


def test_id_parameters_are_integers(spec):
    parameter = spec["paths"]["/api/songs/{song_id}"]["parameters"][0]
    assert parameter["schema"]["type"] == "integer"


# -- ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/api/songs/{id}", "/api/songs/{id}/analysis-status", "/api/song/{id}/analysis",
    "/api/playlists/{id}", "/api/jobs/{id}", "/api/playlists/{id}/analysis-status",
])
@pytest.mark.parametrize("bad_id", ["-1", "0", "-0", "9223372036854775808", "1" + "0" * 40])
def test_impossible_ids_are_json_404s_naming_them(client, path, bad_id):
    response = client.get(path.format(id=bad_id))
    assert response.status_code == 404
    assert response.is_json
    (value,) = response.get_json()["error"]["details"].values()
    assert value == int(bad_id)
    assert str(int(bad_id)) in response.get_json()["error"]["message"]


def test_the_largest_id_is_a_plain_404(client):
    response = client.get("/api/songs/9223372036854775807")
    assert response.status_code == 404
    assert response.get_json()["error"]["message"] == "song 9223372036854775807 not found"


@pytest.mark.parametrize("path", ["/api/songs/abc", "/api/songs/1.5", "/api/songs/%201"])
def test_non_integer_ids_are_json_404s(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


# -- bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_a_non_json_body_is_415(client, row_counts, content_type):
    before = row_counts()
    response = client.post("/api/songs", data=b'{"title": "T", "artist": "A", "lyrics": ""}',
                           content_type=content_type)
    assert response.status_code == 415
    error = response.get_json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "application/json" in error["message"]
    assert row_counts() == before


def test_json_suffix_content_types_are_json(client):
    response = client.post("/api/analyze", content_type="application/vnd.selah+json",
                           data=b'{"title": "T", "artist": "A", "lyrics": ""}')
    assert response.status_code == 200


def test_an_empty_body_is_an_empty_object(client):
    response = client.post("/api/analyze", data=b"", content_type="application/json")
    assert response.status_code == 422
    assert sorted(response.get_json()["error"]["details"]) == ["artist", "lyrics", "title"]


def test_a_body_over_max_content_length_is_413(client, row_counts):
    before = row_counts()
    body = b'{"title": "T", "artist": "A", "lyrics": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = client.post("/api/songs", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    assert row_counts() == before


def test_unicode_survives_the_round_trip(client):
    song = {"title": "Ángel — 祈り", "artist": "Chœur 🎵", "lyrics": LYRICS + " ñ ü 你好"}
    created = client.post("/api/songs", json=song).get_json()
    assert {k: created[k] for k in song} == song
