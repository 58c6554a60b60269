"""One JSON error shape for every error: `{"error": {"code", "message", "details"}}`.

Legacy routes (marked with `legacy_route`) also carry `success: false`, as the web app expects.
Validation errors from the schemas come here as HTTP 422 with the offending fields in `details`.
"""

import logging
from functools import wraps

import marshmallow as ma
from flask import current_app, request
from flask_smorest import Api
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.extensions import db
from app.services.errors import ServiceError, summary
from selah.analyzers.base import AnalyzerRateLimited, AnalyzerUnavailable

log = logging.getLogger(__name__)
# Seconds a client should wait before retrying while the database is unavailable.
DATABASE_RETRY_AFTER = 5


def legacy_route(view):
    """Mark a view as one the legacy web app calls: its errors also say `success: false`."""
    view._selah_legacy = True
    return view


def _is_legacy_request() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(view is not None and getattr(view, "_selah_legacy", False))


def error_response(status: int, code: str, message: str, details: dict | None = None, headers=None):
    """The one error body; `success: false` is added on legacy routes."""
    body: dict = {"error": {"code": code, "message": message, "details": details or {}}}
    if _is_legacy_request():
        body = {"success": False, "message": message, "error": body["error"]}
    return body, status, headers or {}


def _field_details(messages) -> dict:
    """Flatten webargs' `{"json": {"field": [...]}}` to `{"field": [...]}` (location dropped)."""
    if isinstance(messages, dict) and len(messages) == 1:
        (location, inner), = messages.items()
        if location in ("json", "query", "view_args", "form", "files", "headers") and isinstance(
            inner, dict
        ):
            return inner
    return messages if isinstance(messages, dict) else {"_schema": messages}


class ErrorSchema(ma.Schema):
    """The error payload, for the OpenAPI document."""

    class Inner(ma.Schema):
        code = ma.fields.String(metadata={"description": "Machine-readable error code"})
        message = ma.fields.String(metadata={"description": "What went wrong"})
        details = ma.fields.Dict(metadata={"description": "Per-field problems or context"})

    error = ma.fields.Nested(Inner)
    success = ma.fields.Boolean(metadata={"description": "Present (false) on legacy routes"})
    message = ma.fields.String(metadata={"description": "Present on legacy routes: the error's "
                                                        "message, where the web app reads it"})


class SelahApi(Api):
    """flask-smorest's Api with this service's error shape."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):
        """Render any HTTP error (aborts, validation, 404/405/413, unhandled 500) as JSON."""
        data = getattr(error, "data", None) or {}
        messages = data.get("errors") or data.get("messages")
        if error.code == 400 and messages:
            # webargs: a JSONDecodeError, or one it made from a UnicodeDecodeError (bad UTF-8).
            exc = getattr(error, "exc", None)
            reason = getattr(exc, "msg", None) or getattr(exc, "reason", None) or "undecodable body"
            details = {"body": [f"request body is not valid UTF-8 JSON: {reason}"]}
            return error_response(400, "invalid_json", f"request body is not valid JSON: {reason}",
                                  details)
        if error.code == 422 and messages:
            details = _field_details(messages)
            if details == {"_schema": ["Invalid input type."]}:  # a JSON list, null, number...
                message = "invalid input: the body must be a JSON object"
            elif set(details) == {"_schema"}:
                message = f"invalid input: {'; '.join(map(str, details['_schema']))}"
            else:
                message = f"invalid input: {', '.join(sorted(map(str, details)))}"
            return error_response(422, "validation_error", message, details)
        if isinstance(error, InternalServerError):
            # Flask has logged the original exception's traceback (`Flask.log_exception`, with the
            # method and path) before it gets here: logging it again would print it twice.
            return error_response(500, "internal_error", "internal server error")
        code = (error.name or "error").lower().replace(" ", "_")
        message = data.get("message") or error.description or error.name
        # Keep the exception's own headers (Allow on 405, ...), not its HTML content type.
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        headers.update(data.get("headers") or {})
        return error_response(error.code or 500, code, message, headers=headers)


class NestedTooDeeply(ServiceError):
    """A JSON body nested past what the parser can follow (Python's recursion limit)."""

    status = 400
    code = "bad_request"


def parse_json_body() -> None:
    """Parse a JSON body before any view does (the result is cached on the request), so that a
    body nested thousands of levels deep is a 400 instead of a `RecursionError` (a 500)."""
    if not request.is_json or not request.content_length:
        return
    try:
        request.get_json(silent=True)  # bad JSON is left to the view's parser, which says why
    except RecursionError:
        raise NestedTooDeeply("the JSON body is nested too deeply to read") from None


def register_error_handlers(app) -> None:
    """Translate service exceptions into the JSON error shape; parse JSON bodies first."""

    app.before_request(parse_json_body)

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError):
        return error_response(exc.status, exc.code, exc.message, exc.details, dict(exc.headers))

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_unavailable(exc: DBAPIError):
        # The database is down, restarting or refusing connections: the caller should retry, and
        # one log line is enough (the next request gets a fresh connection: pool_pre_ping).
        log.warning("database unavailable: %s", summary(exc))
        try:
            db.session.rollback()
        except Exception:  # noqa: BLE001 - a dead connection may refuse even that
            pass
        return error_response(503, "database_unavailable",
                              "the database is unavailable; retry shortly",
                              headers={"Retry-After": str(DATABASE_RETRY_AFTER)})

    @app.errorhandler(AnalyzerUnavailable)
    def _analyzer_unavailable(exc: AnalyzerUnavailable):
        return error_response(503, "analyzer_unavailable", str(exc), headers={"Retry-After": "30"})

    @app.errorhandler(AnalyzerRateLimited)
    def _rate_limited(exc: AnalyzerRateLimited):
        headers = {"Retry-After": str(int(exc.retry_after + 0.999))}
        details = {"retry_after": exc.retry_after}
        return error_response(429, "rate_limited", str(exc), details, headers)


def require_admin(view):
    """Refuse the view unless `Authorization: Bearer <ADMIN_TOKEN>` matches a configured token."""
    import hmac

    @wraps(view)
    def wrapper(*args, **kwargs):
        token = current_app.config.get("ADMIN_TOKEN") or ""
        if not token:
            raise ServiceForbidden("admin routes are disabled: ADMIN_TOKEN is not configured")
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise ServiceUnauthorized("missing or wrong admin token (Authorization: Bearer ...)")
        return view(*args, **kwargs)

    return wrapper


class ServiceForbidden(ServiceError):
    """Admin routes with no token configured."""

    status = 403
    code = "forbidden"


class ServiceUnauthorized(ServiceError):
    """Admin routes with a missing or wrong token."""

    status = 401
    code = "unauthorized"
