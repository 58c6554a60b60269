"""Background jobs: their progress, and the legacy analyse-everything routes."""

from app.api import Blueprint, job_service, submit_job
from app.api.playlists import job_started, progress_body
from app.errors import legacy_route
from app.schemas import ForceSchema, JobSchema, JobStartedSchema, ProgressSchema

blp = Blueprint("jobs", __name__, description="Background analysis jobs and overall progress")


@blp.route("/api/jobs/<id:job_id>")
@blp.response(200, JobSchema)
def get_job(job_id):
    """A job's status and progress."""
    service = job_service()
    return job_body(service.get_job(job_id), service.job_counts(job_id))


@blp.route("/api/analyze-all", methods=["POST"])
@legacy_route
@blp.arguments(ForceSchema, required=False)
@blp.response(200, JobStartedSchema)
def analyze_all(args):
    """Start a background analysis of every song not yet analysed by the serving model (legacy)."""
    job = job_service().create_all_job(args["force"])
    submit_job(job)
    return job_started(job, f"Queued {job.eligible_songs} of {job.total_songs} songs for analysis")


@blp.route("/api/analysis/status", endpoint="analysis_status")
@blp.route("/api/analysis/progress", endpoint="analysis_progress")
@legacy_route
@blp.response(200, ProgressSchema)
def analysis_status():
    """Progress over every stored song (legacy)."""
    return progress_body(job_service().overall_counts())


def job_body(job, counts: dict) -> dict:
    """A job with its rows counted by status; progress is the finished share of its rows."""
    finished = counts["completed"] + counts["failed"]
    eligible = job.eligible_songs
    progress = round(100.0 * finished / eligible, 1) if eligible else 100.0
    return {"success": True, "id": job.id, "job_id": job.id, "kind": job.kind,
            "status": job.status, "playlist_id": job.playlist_id, "force": job.force,
            "model_version": job.model_version, "total_songs": job.total_songs,
            "eligible_songs": eligible, "counts": counts, "progress": progress,
            "completed": job.status in ("completed", "failed"),
            "error_message": job.error_message, "created_at": job.created_at,
            "started_at": job.started_at, "finished_at": job.finished_at}
