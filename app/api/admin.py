"""Admin routes: diagnostics, loading the analyzer, swapping in a new model.

Each needs `Authorization: Bearer <ADMIN_TOKEN>`; with no token configured they are refused (403).
"""

import platform
import sys

from flask import current_app
from sqlalchemy import func, select, text

from app.api import Blueprint, job_service, model_store
from app.errors import legacy_route, require_admin
from app.extensions import db
from app.models import Job, Playlist
from app.schemas import AnalyzerStateSchema, DiagnosticsSchema
from app.services.errors import ServiceError

blp = Blueprint("admin", __name__, description="Diagnostics and model management (admin token)")
ADMIN = [{"AdminToken": []}]


class ModelRefused(ServiceError):
    """A reloaded model failed to load or validate; the previous one keeps serving."""

    status = 409
    code = "model_refused"


@blp.route("/api/admin/diagnostics")
@legacy_route
@require_admin
@blp.doc(security=ADMIN)
@blp.response(200, DiagnosticsSchema)
def diagnostics():
    """Model, database, job and process state (legacy)."""
    return {"success": True, "diagnostics": _diagnostics()}


@blp.route("/api/admin/warm", methods=["POST"])
@legacy_route
@require_admin
@blp.doc(security=ADMIN)
@blp.response(200, AnalyzerStateSchema)
def warm():
    """Load the analyzer now, if it is not loaded (legacy); 503 when it cannot load."""
    store = model_store()
    analyzer = store.get()
    return {"success": True, "message": f"analyzer ready: {analyzer.model_version}",
            "model_version": analyzer.model_version, "analyzer": store.info()}


@blp.route("/api/admin/model/reload", methods=["POST"])
@require_admin
@blp.doc(security=ADMIN)
@blp.response(200, AnalyzerStateSchema)
@blp.alt_response(409, description="The new model was refused; the previous one keeps serving")
def reload_model():
    """Load the configured model beside the serving one and swap it in if it validates."""
    store = model_store()
    ok, message = store.reload()
    if not ok:
        raise ModelRefused(f"model refused: {message}",
                           {"serving_model_version": store.model_version, "reason": message})
    return {"success": True, "message": message, "model_version": store.model_version,
            "analyzer": store.info()}


def _diagnostics() -> dict:
    store = model_store()
    ok, message = store.preflight()
    config = current_app.config
    return {
        "analyzer": store.info(),
        "preflight": {"ok": ok, "message": message},
        "database": _database(),
        "runner": current_app.extensions["selah.runner"].name,
        "songs": job_service().overall_counts(),
        "jobs": dict(db.session.execute(select(Job.status, func.count()).group_by(Job.status))
                     .all()),
        "playlists": db.session.scalar(select(func.count()).select_from(Playlist)),
        "limits": {key: config[key] for key in (
            "MAX_TITLE_LENGTH", "MAX_ARTIST_LENGTH", "MAX_LYRICS_LENGTH", "MAX_BATCH_SIZE",
            "MAX_CONTENT_LENGTH")},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def _database() -> dict:
    dialect = db.engine.dialect.name
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - diagnostics report a broken database, not raise
        db.session.rollback()
        return {"dialect": dialect, "reachable": False, "error": type(exc).__name__}
    return {"dialect": dialect, "reachable": True}
