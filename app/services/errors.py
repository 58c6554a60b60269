"""Exceptions the services raise; `app.errors` turns each into the one JSON error shape.

Services never import Flask: they raise these, and the views' error handlers translate them.
"""

from typing import TypeVar

from sqlalchemy.orm import Session

Row = TypeVar("Row")


class ServiceError(Exception):
    """Base of every service error: an HTTP status, a machine code, a message and details."""

    status = 400
    code = "bad_request"
    headers: dict[str, str] = {}  # response headers (Retry-After, ...)

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFound(ServiceError):
    """A song, playlist or job id that does not exist."""

    status = 404
    code = "not_found"


class InvalidInput(ServiceError):
    """Input the schemas let through but the service cannot use (e.g. unknown song ids)."""

    status = 422
    code = "invalid_input"


class Unavailable(ServiceError):
    """The analyzer or another dependency is not ready; retry later."""

    status = 503
    code = "unavailable"


def summary(exc: BaseException) -> str:
    """One line for a log: the exception's type and the first line of its message (a driver's
    error, `exc.orig`, when SQLAlchemy wraps one)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__


def get_or_404(session: Session, model: type[Row], ident: int, what: str, **options) -> Row:
    """The `model` row with primary key `ident`, or NotFound: "`what` `ident` not found", with
    `{"<what>_id": ident}` as details. `options` go to `session.get` (e.g. eager loads)."""
    row = session.get(model, ident, **options)
    if row is None:
        raise NotFound(f"{what} {ident} not found", {f"{what}_id": ident})
    return row
