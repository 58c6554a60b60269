"""SQLAlchemy 2.0 models: songs, playlists, playlist membership, analysis results and jobs.

`analysis_results` keeps every column the legacy web app had, plus the v3.1 columns it never
wrote, plus three of this service's own: `model_version` and `lyrics_hash` (the cache key) and
`result` (the whole `AnalysisResult.to_dict()`). A row is also the unit of background work: a job
creates `pending` rows, a worker claims one (`in_progress` with a lease), and completes it in the
same transaction that writes the result, so a killed worker loses nothing and repeats nothing.
"""

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

ANALYSIS_STATUSES = ("pending", "in_progress", "completed", "failed")
JOB_STATUSES = ("queued", "running", "completed", "failed")
JOB_KINDS = ("playlist", "all", "songs")


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use app.models.utcnow()")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class TimestampMixin:
    """`created_at` and `updated_at`, set by the ORM."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class Song(TimestampMixin, db.Model):
    """A song the service knows: title, artist, optional album, lyrics."""

    __tablename__ = "songs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    artist: Mapped[str] = mapped_column(String(300), nullable=False)
    album: Mapped[str | None] = mapped_column(String(300))
    lyrics: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # SHA-256 of the normalised lyrics; with the model version, the analysis cache key.
    lyrics_hash: Mapped[str] = mapped_column(String(64), nullable=False, index=True)

    analyses: Mapped[list["AnalysisRecord"]] = relationship(
        back_populates="song", cascade="all, delete-orphan", passive_deletes=True
    )


class Playlist(TimestampMixin, db.Model):
    """A named, ordered list of songs."""

    __tablename__ = "playlists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)

    entries: Mapped[list["PlaylistSong"]] = relationship(
        back_populates="playlist",
        cascade="all, delete-orphan",
        order_by="PlaylistSong.position",
        passive_deletes=True,
    )


class PlaylistSong(db.Model):
    """Membership of a song in a playlist, at a position."""

    __tablename__ = "playlist_songs"
    __table_args__ = (UniqueConstraint("playlist_id", "song_id", name="uq_playlist_song"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    playlist_id: Mapped[int] = mapped_column(
        ForeignKey("playlists.id", ondelete="CASCADE"), nullable=False, index=True
    )
    song_id: Mapped[int] = mapped_column(
        ForeignKey("songs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)

    playlist: Mapped[Playlist] = relationship(back_populates="entries")
    song: Mapped[Song] = relationship()


class Job(TimestampMixin, db.Model):
    """A background analysis over many songs; its songs are `analysis_results` rows."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {JOB_STATUSES}", name="ck_jobs_status"),
        CheckConstraint(f"kind IN {JOB_KINDS}", name="ck_jobs_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    playlist_id: Mapped[int | None] = mapped_column(
        ForeignKey("playlists.id", ondelete="SET NULL"), index=True
    )
    force: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    model_version: Mapped[str] = mapped_column(String(200), nullable=False)
    total_songs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    eligible_songs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    items: Mapped[list["AnalysisRecord"]] = relationship(back_populates="job")


class AnalysisRecord(TimestampMixin, db.Model):
    """One analysis of one song (table `analysis_results`); the latest by time is current."""

    __tablename__ = "analysis_results"
    __table_args__ = (
        CheckConstraint(f"status IN {ANALYSIS_STATUSES}", name="ck_analysis_results_status"),
        CheckConstraint("score IS NULL OR (score >= 0 AND score <= 100)", name="ck_analysis_score"),
        Index("ix_analysis_results_song_created", "song_id", "created_at"),
        Index("ix_analysis_results_job_status", "job_id", "status"),
        Index("ix_analysis_results_cache", "lyrics_hash", "model_version", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    song_id: Mapped[int] = mapped_column(
        ForeignKey("songs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    score: Mapped[float | None] = mapped_column(Float)
    concern_level: Mapped[str | None] = mapped_column(String(32))
    explanation: Mapped[str | None] = mapped_column(Text)

    # Legacy JSON columns.
    themes: Mapped[list | None] = mapped_column(JSON)
    concerns: Mapped[list | None] = mapped_column(JSON)
    purity_flags_details: Mapped[list | None] = mapped_column(JSON)
    positive_themes_identified: Mapped[list | None] = mapped_column(JSON)
    biblical_themes: Mapped[list | None] = mapped_column(JSON)
    supporting_scripture: Mapped[list | None] = mapped_column(JSON)
    problematic_content: Mapped[dict | None] = mapped_column(JSON)

    # v3.1 columns (the legacy code never wrote them).
    verdict: Mapped[str | None] = mapped_column(String(32))
    purity_score: Mapped[float | None] = mapped_column(Float)
    formation_risk: Mapped[str | None] = mapped_column(String(16))
    doctrinal_clarity: Mapped[str | None] = mapped_column(String(16))
    confidence: Mapped[float | None] = mapped_column(Float)
    needs_review: Mapped[bool | None] = mapped_column(Boolean)
    narrative_voice: Mapped[str | None] = mapped_column(String(32))
    lament_filter_applied: Mapped[bool | None] = mapped_column(Boolean)
    framework_data: Mapped[dict | None] = mapped_column(JSON)

    error_message: Mapped[str | None] = mapped_column(Text)
    analyzed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # This service's own columns.
    model_version: Mapped[str | None] = mapped_column(String(200))
    lyrics_hash: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[dict | None] = mapped_column(JSON)
    # True when the result was copied from an earlier analysis of the same lyrics and model.
    from_cache: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    song: Mapped[Song] = relationship(back_populates="analyses")
    job: Mapped[Job | None] = relationship(back_populates="items")
