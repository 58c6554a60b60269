"""The stand-in web app's tables: songs, playlists, `analysis_results` (contract.md, section 3)."""

from datetime import datetime, timezone

from app import db


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Song(db.Model):
    __tablename__ = "songs"
    id = db.Column(db.Integer, primary_key=True)
    spotify_id = db.Column(db.String(64))
    title = db.Column(db.String(300), nullable=False)
    artist = db.Column(db.String(300), nullable=False)
    album = db.Column(db.String(300))
    lyrics = db.Column(db.Text)


class Playlist(db.Model):
    __tablename__ = "playlists"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(300), nullable=False)


class PlaylistSong(db.Model):
    __tablename__ = "playlist_songs"
    playlist_id = db.Column(db.Integer, db.ForeignKey("playlists.id"), primary_key=True)
    song_id = db.Column(db.Integer, db.ForeignKey("songs.id"), primary_key=True)
    track_position = db.Column(db.Integer, nullable=False)


class AnalysisResult(db.Model):
    __tablename__ = "analysis_results"
    __table_args__ = (
        db.CheckConstraint("status IN ('pending', 'in_progress', 'completed', 'failed')",
                           name="ck_status"),
    )
    id = db.Column(db.Integer, primary_key=True)
    song_id = db.Column(db.Integer, db.ForeignKey("songs.id", ondelete="CASCADE"), nullable=False)
    status = db.Column(db.String(20), nullable=False, default="pending")
    score = db.Column(db.Float)
    concern_level = db.Column(db.String(50))
    explanation = db.Column(db.Text)
    themes = db.Column(db.JSON)
    concerns = db.Column(db.JSON)
    purity_flags_details = db.Column(db.JSON)
    positive_themes_identified = db.Column(db.JSON)
    biblical_themes = db.Column(db.JSON)
    supporting_scripture = db.Column(db.JSON)
    problematic_content = db.Column(db.JSON)
    verdict = db.Column(db.String(50))
    purity_score = db.Column(db.Float)
    formation_risk = db.Column(db.String(50))
    doctrinal_clarity = db.Column(db.String(50))
    confidence = db.Column(db.Float)
    needs_review = db.Column(db.Boolean)
    narrative_voice = db.Column(db.String(50))
    lament_filter_applied = db.Column(db.Boolean)
    framework_data = db.Column(db.JSON)
    error_message = db.Column(db.Text)
    analyzed_at = db.Column(db.DateTime)
    created_at = db.Column(db.DateTime, default=_now, nullable=False)
    updated_at = db.Column(db.DateTime, default=_now, onupdate=_now, nullable=False)

    def mark_completed(self, score, concern_level, themes, concerns, explanation,
                       supporting_scripture):
        self.status = "completed"
        self.score, self.concern_level, self.themes = score, concern_level, themes
        self.concerns, self.explanation = concerns, explanation
        self.supporting_scripture = supporting_scripture
        self.analyzed_at = _now()
