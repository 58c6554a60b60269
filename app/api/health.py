"""Health, readiness and metrics."""

from flask import current_app
from flask_smorest import Blueprint
from sqlalchemy import text

from app.extensions import db
from app.schemas import HealthSchema, ReadinessSchema

blp = Blueprint("health", __name__, description="Liveness, readiness and Prometheus metrics")


@blp.route("/healthz")
@blp.response(200, HealthSchema)
def healthz():
    """Liveness: the process answers."""
    return {"status": "ok"}


@blp.route("/readyz")
@blp.response(200, ReadinessSchema)
@blp.alt_response(503, schema=ReadinessSchema, description="Not ready: `error` says why")
def readyz():
    """Readiness: analyzer loaded and database reachable; names the model version and the runtime
    it runs on, and says so when a newer model on disk was refused while the loaded one keeps
    serving."""
    store = current_app.extensions["selah.model_store"]
    checks, problems = {}, []
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report any database failure as not ready
        checks["database"] = "unreachable"
        problems.append(f"database unreachable: {type(exc).__name__}")
    if store.status == "ready":
        checks["analyzer"] = "ok"
    else:
        checks["analyzer"] = store.status
        problems.append(f"analyzer {store.status}: {_analyzer_problem(store)}")
    body = {
        "status": "ready" if not problems else "not_ready",
        "checks": checks,
        "backend": store.backend_cls.backend,
        "model_version": store.model_version,
    }
    runtime = store.runtime
    if runtime:
        body["runtime"] = runtime
    if problems:
        body["error"] = {"code": "not_ready", "message": "; ".join(problems), "details": checks}
        return body, 503
    if store.error:  # a reload was refused: the previous model still serves
        checks["model_on_disk"] = "refused"
        body["warning"] = (f"ready, serving {store.model_version}; the model on disk was refused: "
                           f"{store.error}")
    return body


def _analyzer_problem(store) -> str:
    if store.status == "loading":
        return "the model is loading"
    if store.error:
        return store.error
    ok, message = store.preflight()
    return "not loaded yet (POST /api/admin/warm loads it)" if ok else message


@blp.route("/metrics")
@blp.doc(responses={"200": {
    "description": "Prometheus text exposition format",
    "content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics():
    """Prometheus metrics in the text exposition format."""
    body = current_app.extensions["selah.metrics"].render()
    return body, 200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
