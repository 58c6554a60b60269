"""The one JSON error shape (`app/errors.py`), for every way a request can fail."""

import pytest
from flask import abort
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app.errors import legacy_route, require_admin
from app.extensions import db
from app.models import Job, Song
from app.services.errors import InvalidInput, NotFound
from selah.analyzers.base import AnalyzerRateLimited, AnalyzerUnavailable

SONG = b'{"title": "T", "artist": "A", "lyrics": "la"}'


def assert_error_shape(body: dict, code: str, legacy: bool = False) -> dict:
    """The body is `{"error": {code, message, details}}`, plus `success: false` when legacy."""
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    if legacy:
        assert body["success"] is False and body["message"] == error["message"]
    else:
        assert set(body) == {"error"}
    return error


def stored_rows(app) -> tuple[int, int]:
    """Songs and jobs stored (what the routes below could write)."""
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(model))
                     for model in (Song, Job))


ERRORS = {
    "not_found": lambda: NotFound("song 3 not found", {"song_id": 3}),
    "invalid": lambda: InvalidInput("bad ids", {"song_ids": [9]}),
    "unavailable": lambda: AnalyzerUnavailable("no checkpoint"),
    "rate_limited": lambda: AnalyzerRateLimited("slow down", 1.2),
    "crash": lambda: ZeroDivisionError("a bug"),
    "database": lambda: OperationalError("SELECT 1", {}, Exception("connection refused\nmore")),
}


def fail(kind: str):
    """Raise the error named `kind` (a Flask abort for `abort`)."""
    if kind == "abort":
        abort(409, "already exists")
    raise ERRORS[kind]()


@pytest.fixture
def raising_app(make_app):
    """An app with extra routes that raise each kind of error."""
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = False  # let unhandled errors become 500s as in serving

    def plain(kind):
        return fail(kind)

    @legacy_route
    def legacy(kind):
        return fail(kind)

    @require_admin
    def admin():
        return {"ok": True}

    app.add_url_rule("/test/raise/<kind>", "raise_plain", plain)
    app.add_url_rule("/test/legacy/<kind>", "raise_legacy", legacy)
    app.add_url_rule("/test/admin", "admin_only", admin)
    return app


@pytest.mark.parametrize("kind, status, code, details", [
    ("not_found", 404, "not_found", {"song_id": 3}),
    ("invalid", 422, "invalid_input", {"song_ids": [9]}),
    ("unavailable", 503, "analyzer_unavailable", {}),
    ("rate_limited", 429, "rate_limited", {"retry_after": 1.2}),
    ("abort", 409, "conflict", {}),
    ("crash", 500, "internal_error", {}),
    ("database", 503, "database_unavailable", {}),
])
@pytest.mark.parametrize("legacy", [False, True])
def test_errors_are_translated(raising_app, kind, status, code, details, legacy):
    path = f"/test/{'legacy' if legacy else 'raise'}/{kind}"
    response = raising_app.test_client().get(path)
    assert response.status_code == status
    assert response.is_json
    error = assert_error_shape(response.get_json(), code, legacy)
    assert error["details"] == details


def test_retry_after_headers(raising_app):
    client = raising_app.test_client()
    assert client.get("/test/raise/unavailable").headers["Retry-After"] == "30"
    assert client.get("/test/raise/rate_limited").headers["Retry-After"] == "2"
    assert client.get("/test/raise/database").headers["Retry-After"] == "5"


def test_an_internal_error_does_not_leak_the_exception(raising_app):
    body = raising_app.test_client().get("/test/raise/crash").get_json()
    assert "ZeroDivisionError" not in str(body)


def test_an_internal_error_is_logged_once_with_its_traceback(raising_app, caplog):
    with caplog.at_level("ERROR"):
        raising_app.test_client().get("/test/raise/crash")
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1
    assert tracebacks[0].exc_info[0] is ZeroDivisionError
    assert "/test/raise/crash" in tracebacks[0].getMessage()


def test_require_admin(raising_app, admin_headers):
    client = raising_app.test_client()
    assert client.get("/test/admin", headers=admin_headers).get_json() == {"ok": True}
    assert_error_shape(client.get("/test/admin").get_json(), "unauthorized")
    raising_app.config["ADMIN_TOKEN"] = ""
    assert_error_shape(client.get("/test/admin", headers=admin_headers).get_json(), "forbidden")


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "Expecting property name"),
    (b'{"title": "T",}', "Expecting property name"),
    (b'{"title": "\xff\xfe"}', "Bytes decoding error"),
    (b"\xef\xbb\xbf" + SONG, "Unexpected UTF-8 BOM"),
    (b'{"title": "caf\xe9"}', "Bytes decoding error"),
    (b"   ", "Expecting value"),
])
@pytest.mark.parametrize("path, legacy", [("/api/analyze", False),
                                          ("/api/analyze-all", True)])
def test_invalid_json_and_invalid_utf8_are_400(app, client, body, reason, path, legacy):
    before = stored_rows(app)
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 400
    error = assert_error_shape(response.get_json(), "invalid_json", legacy)
    assert reason in error["message"]
    assert list(error["details"]) == ["body"]
    assert stored_rows(app) == before


@pytest.mark.parametrize("body", [b"[]", b"null", b"42", b'"text"'])
def test_a_body_that_is_not_an_object_is_422(client, body):
    response = client.post("/api/analyze", data=body, content_type="application/json")
    assert response.status_code == 422
    error = assert_error_shape(response.get_json(), "validation_error")
    assert "JSON object" in error["message"]


def test_validation_errors_name_every_field(client):
    response = client.post("/api/analyze", json={"title": "", "lyrics": 3, "extra": 1})
    error = assert_error_shape(response.get_json(), "validation_error")
    assert sorted(error["details"]) == ["artist", "extra", "lyrics", "title"]
    assert error["message"] == "invalid input: artist, extra, lyrics, title"


def test_unknown_route_is_a_json_404(client):
    response = client.get("/api/nothing/here")
    assert response.status_code == 404
    assert_error_shape(response.get_json(), "not_found")


def test_wrong_method_is_a_json_405_with_allow(client):
    response = client.delete("/api/songs")
    assert response.status_code == 405
    assert_error_shape(response.get_json(), "method_not_allowed")
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_too_large_is_a_json_413(client):
    response = client.post("/api/analyze", data=b"x" * (2 * 1024 * 1024 + 1),
                           content_type="application/json")
    assert response.status_code == 413
    assert_error_shape(response.get_json(), "request_entity_too_large")


def test_unsupported_media_type_on_a_legacy_route(client):
    song = client.post("/api/songs", data=SONG, content_type="application/json").get_json()
    response = client.post(f"/api/songs/{song['id']}/analyze", data=b"force=1",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert_error_shape(response.get_json(), "unsupported_media_type", legacy=True)


def test_a_database_error_with_an_empty_message_is_still_a_503(raising_app, caplog):
    ERRORS["database_blank"] = lambda: OperationalError("SELECT 1", {}, Exception(""))
    try:
        response = raising_app.test_client().get("/test/raise/database_blank")
    finally:
        del ERRORS["database_blank"]
    assert response.status_code == 503
    assert "database unavailable: Exception" in caplog.text
