"""The stand-in web app's routes the contract names (section 4), analysing synchronously."""

from flask import Blueprint, jsonify

from app import db
from app.models import AnalysisResult, PlaylistSong, Song
from app.services.analyzer_cache import get_analyzer_info, initialize_analyzer
from app.services.unified_analysis_service import UnifiedAnalysisService

bp = Blueprint("main", __name__)


def _row(analysis):
    return {name: getattr(analysis, name) for name in (
        "id", "status", "score", "concern_level", "explanation", "themes", "concerns",
        "supporting_scripture", "verdict", "purity_score", "formation_risk", "doctrinal_clarity",
        "confidence", "needs_review", "narrative_voice", "lament_filter_applied",
        "framework_data", "error_message")}


@bp.post("/api/songs/<int:song_id>/analyze")
def analyze_song(song_id):
    analysis = UnifiedAnalysisService().analyze_song(song_id)
    return jsonify(success=True, message="Analysis complete", song_id=song_id,
                   score=analysis.score)


@bp.get("/api/song/<int:song_id>/analysis")
def song_analysis(song_id):
    song = db.session.get(Song, song_id)
    latest = (AnalysisResult.query.filter_by(song_id=song_id)
              .order_by(AnalysisResult.created_at.desc(), AnalysisResult.id.desc()).first())
    return jsonify(song={"id": song.id, "name": song.title, "artist": song.artist,
                         "album": song.album, "lyrics": song.lyrics},
                   analysis=_row(latest) if latest else None)


@bp.post("/api/playlists/<int:playlist_id>/analyze")
def analyze_playlist(playlist_id):
    entries = (PlaylistSong.query.filter_by(playlist_id=playlist_id)
               .order_by(PlaylistSong.track_position).all())
    service = UnifiedAnalysisService()
    for entry in entries:
        service.analyze_song(entry.song_id)
    return jsonify(success=True, message="Playlist analysed", total_songs=len(entries),
                   eligible_songs=len(entries), analysis_type="batch_ml_async", job_id=None)


@bp.post("/api/admin/warm")
def warm():
    initialize_analyzer()
    return jsonify(success=True, diagnostics=get_analyzer_info())


@bp.get("/api/admin/diagnostics")
def diagnostics():
    return jsonify(success=True, diagnostics=get_analyzer_info())
