"""The HTTP API: one blueprint module per resource, and what their views share.

Views build their services through the helpers here (one session, the app's store, metrics and
settings), parse bodies through `Blueprint` (flask-smorest's, with a parser that refuses non-JSON
bodies) and take ids through the `<id:...>` converter, so that an impossible id (negative, or too
big for the database) is a JSON 404 naming it rather than an HTML 404 or a database overflow.
"""

import json

import flask_smorest
from flask import Flask, current_app
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import UnsupportedMediaType
from werkzeug.routing import IntegerConverter

from app.extensions import db
from app.services.errors import NotFound

# Largest id a database integer column holds (SQLite and PostgreSQL BIGINT).
MAX_ID = 2**63 - 1


class JsonOnlyParser(FlaskParser):
    """webargs' parser, but a non-empty body that is not JSON is refused (415), not ignored.

    An empty body (with or without a JSON content type) loads as `{}`, so legacy callers that POST
    nothing to a route whose fields are all optional still work.
    """

    def _raw_load_json(self, req):
        if not is_json_request(req):
            if req.get_data(cache=True):
                raise UnsupportedMediaType(
                    f"request body must be JSON (Content-Type: application/json), "
                    f"not {req.mimetype or 'unspecified'}"
                )
            return core.missing
        try:
            return super()._raw_load_json(req)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise
        except ValueError as exc:
            # json.loads' own limits, such as an integer of more than 4,300 digits: as unreadable
            # as bad JSON, so the same 400 (webargs reports only JSONDecodeError that way).
            raise json.JSONDecodeError(str(exc), doc="<request body>", pos=0) from exc


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the JSON-only argument parser."""

    ARGUMENTS_PARSER = JsonOnlyParser()


class IdConverter(IntegerConverter):
    """`<id:name>`: any integer written without leading zeros, negative included (`_check_ids`
    answers 404 for impossible ones). `/api/songs/01` names no song: ids have one spelling, so a
    URL never aliases another one's resource."""

    regex = r"-?(?:0|[1-9][0-9]*)"

    def __init__(self, url_map, *args, **kwargs):
        super().__init__(url_map, signed=True)
        self.regex = type(self).regex  # NumberConverter's init sets its own, leading zeros allowed


def _check_ids(endpoint, values) -> None:
    """Refuse ids no row can have before a view or the database sees them."""
    for name, value in (values or {}).items():
        if name.endswith("_id") and isinstance(value, int) and not 1 <= value <= MAX_ID:
            resource = name.removesuffix("_id")
            raise NotFound(f"{resource} {value} not found (ids are positive integers)",
                           {name: value})


def register_blueprints(app: Flask, api) -> None:
    """Register the id converter and every blueprint on the flask-smorest `api`."""
    from app.api import admin, analyze, health, jobs, playlists, songs

    app.url_map.converters["id"] = IdConverter
    api.register_converter(IdConverter, lambda _converter: {
        "type": "integer", "minimum": 1, "description": "decimal, without leading zeros"})
    api.spec.components.security_scheme("AdminToken", {"type": "http", "scheme": "bearer"})
    app.url_value_preprocessor(_check_ids)
    for module in (health, analyze, songs, playlists, jobs, admin):
        api.register_blueprint(module.blp)


# -- services for the current request ------------------------------------------------------------


def model_store():
    """The app's `ModelStore`."""
    return current_app.extensions["selah.model_store"]


def analysis_service():
    """An `AnalysisService` on the request's session, with the app's store, metrics and lease."""
    from app.services.analysis import AnalysisService

    return AnalysisService(db.session, model_store(), current_app.extensions.get("selah.metrics"),
                           current_app.config["JOB_LEASE_SECONDS"],
                           current_app.extensions["selah.result_cache"])


def job_service():
    """A `JobService` on the request's session (see `app.runners.job_service`)."""
    from app.runners import job_service as build

    return build(current_app._get_current_object())


def catalog_service():
    """A `CatalogService` (songs and playlists) on the request's session."""
    from app.services.catalog import CatalogService

    return CatalogService(db.session)


def submit_job(job) -> None:
    """Hand a stored job to the app's runner (thread, RQ, or none)."""
    current_app.extensions["selah.runner"].submit(job.id)
