"""Playlists: registration and lookup, and the legacy playlist analysis routes."""

from app.api import Blueprint, catalog_service, job_service, submit_job
from app.errors import legacy_route
from app.schemas import (
    ForceSchema,
    JobStartedSchema,
    PageQuerySchema,
    PlaylistCreateSchema,
    PlaylistPageSchema,
    PlaylistSchema,
    ProgressSchema,
)

blp = Blueprint("playlists", __name__, description="Playlists and their background analysis")


@blp.route("/api/playlists", methods=["POST"])
@blp.arguments(PlaylistCreateSchema)
@blp.response(201, PlaylistSchema)
def create_playlist(args):
    """Store a playlist of stored songs (`song_ids`) then new ones (`songs`)."""
    return catalog_service().create_playlist(**args)


@blp.route("/api/playlists", methods=["GET"])
@blp.arguments(PageQuerySchema, location="query")
@blp.response(200, PlaylistPageSchema)
def list_playlists(args):
    """List playlists, a page at a time."""
    playlists, total = catalog_service().list_playlists(args["page"], args["per_page"])
    return {"playlists": playlists, "total": total, **args}


@blp.route("/api/playlists/<id:playlist_id>", methods=["GET"])
@blp.response(200, PlaylistSchema)
def get_playlist(playlist_id):
    """One playlist and its songs, in order."""
    return catalog_service().get_playlist(playlist_id)


@blp.route("/api/playlists/<id:playlist_id>/analyze", methods=["POST"],
           endpoint="analyze_playlist")
@blp.route("/analyze_playlist/<id:playlist_id>", methods=["POST"],
           endpoint="analyze_playlist_alias")
@legacy_route
@blp.arguments(ForceSchema, required=False)
@blp.response(200, JobStartedSchema)
def analyze_playlist(args, playlist_id):
    """Start a background analysis of a playlist's songs (legacy)."""
    job = job_service().create_playlist_job(playlist_id, args["force"])
    submit_job(job)
    return job_started(job, f"Analysis started for {job.eligible_songs} of "
                            f"{job.total_songs} songs in playlist {playlist_id}")


@blp.route("/api/playlists/<id:playlist_id>/analysis-status")
@legacy_route
@blp.response(200, ProgressSchema)
def playlist_analysis_status(playlist_id):
    """Progress of the analysis of a playlist's songs (legacy)."""
    body = progress_body(job_service().playlist_counts(playlist_id))
    return {**body, "playlist_id": playlist_id}


def job_started(job, message: str) -> dict:
    """The legacy answer to starting a background batch."""
    return {"success": True, "message": message, "job_id": job.id,
            "playlist_id": job.playlist_id, "total_songs": job.total_songs,
            "eligible_songs": job.eligible_songs, "queued_count": job.eligible_songs,
            "analysis_type": "batch_ml_async", "status": job.status}


def progress_body(counts: dict) -> dict:
    """Legacy progress from songs counted by their latest analysis status.

    A song counts as analysed once its latest analysis finished (completed or failed); progress
    is the analysed share of all songs (100 for none), rounded to one decimal.
    """
    total = counts["total"]
    analyzed = counts["completed"] + counts["failed"]
    running = counts["pending"] + counts["in_progress"]
    active = running > 0 or counts.get("active_jobs", 0) > 0
    progress = round(100.0 * analyzed / total, 1) if total else 100.0
    message = f"{analyzed} of {total} songs analysed"
    if counts["failed"]:
        message += f" ({counts['failed']} failed)"
    if running:
        message += f", {running} in progress"
    detailed = {key: counts[key] for key in
                ("completed", "failed", "pending", "in_progress", "not_started")}
    return {"success": True, "active": active, "completed": analyzed == total and not active,
            "progress": progress, "analyzed_count": analyzed, "total_count": total,
            "message": message, "detailed_status": detailed}
