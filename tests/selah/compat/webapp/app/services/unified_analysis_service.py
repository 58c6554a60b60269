"""The stand-in web app's storing service: one row per song, no verdict columns."""

from app import db
from app.models import AnalysisResult, Song
from app.services.simplified_christian_analysis_service import SimplifiedChristianAnalysisService


class UnifiedAnalysisService:
    def __init__(self):
        self.analysis_service = SimplifiedChristianAnalysisService()

    def analyze_song(self, song_id, user_id=None):
        song = db.session.get(Song, song_id)
        if song is None:
            raise ValueError(f"Song with ID {song_id} not found")
        result = self.analysis_service.analyze_song(song.title, song.artist, song.lyrics or "")
        analysis = AnalysisResult.query.filter_by(song_id=song_id).first()
        if analysis is None:
            analysis = AnalysisResult(song_id=song_id)
            db.session.add(analysis)
        flags = result.content_analysis.get("concern_flags", [])
        analysis.mark_completed(
            score=result.scoring_results["final_score"],
            concern_level=str(result.scoring_results.get("quality_level", "")).lower(),
            themes=[t.get("theme") for t in result.biblical_analysis.get("themes", [])],
            concerns=flags,
            explanation=result.scoring_results["explanation"],
            supporting_scripture=result.biblical_analysis.get("supporting_scripture", []),
        )
        db.session.commit()
        return analysis
