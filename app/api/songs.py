"""Stored songs: registration and lookup, and the legacy per-song analysis routes."""

from app.api import Blueprint, analysis_service, catalog_service
from app.errors import legacy_route
from app.schemas import (
    ForceSchema,
    LegacyAnalyzeSchema,
    PageQuerySchema,
    SongAnalysisSchema,
    SongCreateSchema,
    SongPageSchema,
    SongSchema,
    SongStatusSchema,
)

blp = Blueprint("songs", __name__, description="Stored songs and their analyses")


@blp.route("/api/songs", methods=["POST"])
@blp.arguments(SongCreateSchema)
@blp.response(201, SongSchema)
def create_song(args):
    """Store one song."""
    return catalog_service().create_song(**args)


@blp.route("/api/songs", methods=["GET"])
@blp.arguments(PageQuerySchema, location="query")
@blp.response(200, SongPageSchema)
def list_songs(args):
    """List stored songs, a page at a time (without lyrics)."""
    songs, total = catalog_service().list_songs(args["page"], args["per_page"])
    return {"songs": songs, "total": total, **args}


@blp.route("/api/songs/<id:song_id>", methods=["GET"])
@blp.response(200, SongSchema)
def get_song(song_id):
    """One stored song, with its lyrics."""
    return catalog_service().get_song(song_id)


@blp.route("/api/songs/<id:song_id>/analyze", methods=["POST"], endpoint="analyze_song")
@blp.route("/api/analyze_song/<id:song_id>", methods=["POST"], endpoint="analyze_song_alias")
@legacy_route
@blp.arguments(ForceSchema, required=False)
@blp.response(200, LegacyAnalyzeSchema)
@blp.alt_response(202, schema=LegacyAnalyzeSchema, description="Another worker is analysing it")
def analyze_song(args, song_id):
    """Analyse a stored song now (legacy); a cached result is reused unless `force`."""
    record, source = analysis_service().analyze_song(song_id, args["force"])
    return _analyze_body(record, source), 202 if source == "busy" else 200


@blp.route("/api/songs/<id:song_id>/analysis-status", endpoint="song_analysis_status")
@blp.route("/api/song_analysis_status/<id:song_id>", endpoint="song_analysis_status_alias")
@legacy_route
@blp.response(200, SongStatusSchema)
def song_analysis_status(song_id):
    """The state of a song's latest analysis (legacy)."""
    catalog_service().get_song(song_id)
    return _status_body(song_id, analysis_service().latest(song_id))


@blp.route("/api/song/<id:song_id>/analysis")
@legacy_route
@blp.response(200, SongAnalysisSchema)
def song_analysis(song_id):
    """A song and its latest analysis, or null when it has none (legacy)."""
    song = catalog_service().get_song(song_id)
    return {"song": song, "analysis": analysis_service().latest(song_id)}


def _analyze_body(record, source: str) -> dict:
    body = {"success": record.status != "failed", "song_id": record.song_id,
            "status": record.status, "cached": source == "cache", "analysis": record}
    if source == "busy":
        body["message"] = "Analysis already in progress for this song"
    elif record.status == "failed":
        body["message"] = f"Analysis failed: {record.error_message}"
    else:
        body["message"] = "Analysis loaded from cache" if source == "cache" else "Analysis complete"
    return body


def _status_body(song_id: int, record) -> dict:
    """The legacy status shapes: completed, pending (and in_progress), failed, not_started."""
    if record is None:
        return {"success": True, "song_id": song_id, "completed": False, "has_analysis": False,
                "status": "not_started", "progress": 0, "stage": "not_started",
                "message": "This song has not been analysed yet"}
    if record.status == "completed":
        return {"success": True, "song_id": song_id, "completed": True, "has_analysis": True,
                "status": "completed", "progress": 100, "stage": "complete",
                "score": record.score, "concern_level": record.concern_level,
                "message": "Analysis complete", "result": record, "analysis": record}
    if record.status == "failed":
        return {"success": False, "song_id": song_id, "completed": True, "failed": True,
                "status": "failed", "error": record.error_message,
                "message": f"Analysis failed: {record.error_message}"}
    running = record.status == "in_progress"
    return {"success": True, "song_id": song_id, "completed": False, "has_analysis": False,
            "status": "pending", "progress": 50 if running else 0,
            "stage": "analyzing" if running else "queued",
            "message": "Analysis in progress" if running else "Analysis queued"}
