"""Background analysis jobs: creation, claiming, recovery and progress.

A job's songs are `analysis_results` rows with its `job_id`. A worker claims a row atomically
(`pending` -> `in_progress` with a lease), analyses it, and completes it in the same transaction
that writes the result. A worker killed mid-song leaves its row `in_progress`: recovery puts it
back to `pending` when its lease runs out, or at once when its process is known to be dead. So no
completed work is lost, and no row completes twice. The runners that drive this (in-process
threads, or RQ) are in `app.services.runners`.
"""

import logging
import os
import socket

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from app.models import AnalysisRecord, Job, Playlist, PlaylistSong, Song, utcnow
from app.services.analysis import AnalysisService
from app.services.errors import InvalidInput, get_or_404

log = logging.getLogger(__name__)
ACTIVE = ("pending", "in_progress")


def worker_id(name: str = "worker") -> str:
    """`host:pid:name`, so recovery can tell which claims belong to a dead local process."""
    return f"{socket.gethostname()}:{os.getpid()}:{name}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobService:
    """Creates jobs, hands their rows to workers, recovers stale rows, reports progress."""

    def __init__(self, session: Session, store, metrics=None, lease_seconds: float = 120.0,
                 max_attempts: int = 3):
        self.session = session
        self.analysis = AnalysisService(session, store, metrics, lease_seconds)
        self.store = store
        self.max_attempts = max_attempts

    # -- creation --------------------------------------------------------------------------------

    def create_job(self, kind: str, song_ids: list[int], playlist_id: int | None = None,
                   force: bool = False) -> Job:
        """A job over `song_ids`: one pending row per song that needs analysis.

        A song needs none when its latest analysis is complete for the serving model version and
        its current lyrics (unless `force`), or when it is already queued for that version.
        """
        version = self.store.get().model_version
        job = Job(kind=kind, playlist_id=playlist_id, force=force, model_version=version,
                  total_songs=len(song_ids), status="queued")
        self.session.add(job)
        self.session.flush()
        eligible = 0
        for song_id in dict.fromkeys(song_ids):  # a song listed twice is analysed once
            if self._needs_analysis(song_id, version, force):
                self.session.add(AnalysisRecord(
                    song_id=song_id, job_id=job.id, status="pending", model_version=version,
                    lyrics_hash=self.session.get(Song, song_id).lyrics_hash,
                ))
                eligible += 1
        job.eligible_songs = eligible
        if eligible == 0:
            job.status, job.finished_at = "completed", utcnow()
        self.session.commit()
        return job

    def create_playlist_job(self, playlist_id: int, force: bool = False) -> Job:
        """A job over a playlist's songs."""
        get_or_404(self.session, Playlist, playlist_id, "playlist")
        song_ids = self.session.scalars(
            select(PlaylistSong.song_id)
            .where(PlaylistSong.playlist_id == playlist_id)
            .order_by(PlaylistSong.position)
        ).all()
        return self.create_job("playlist", list(song_ids), playlist_id, force)

    def create_all_job(self, force: bool = False) -> Job:
        """A job over every stored song not yet analysed by the serving model."""
        return self.create_job("all", list(self.session.scalars(select(Song.id).order_by(Song.id))),
                               force=force)

    def create_songs_job(self, song_ids: list[int], force: bool = False) -> Job:
        """A job over given stored songs; unknown ids are refused before anything is stored."""
        known = set(self.session.scalars(select(Song.id).where(Song.id.in_(song_ids))))
        missing = [i for i in song_ids if i not in known]
        if missing:
            raise InvalidInput(f"unknown song ids: {missing}", {"song_ids": missing})
        return self.create_job("songs", song_ids, force=force)

    def _needs_analysis(self, song_id: int, version: str, force: bool) -> bool:
        active = self.session.scalar(
            select(func.count()).select_from(AnalysisRecord).where(
                AnalysisRecord.song_id == song_id,
                AnalysisRecord.model_version == version,
                AnalysisRecord.status.in_(ACTIVE),
            )
        )
        if active:
            return False
        if force:
            return True
        song = self.session.get(Song, song_id)
        return self.analysis.current_analysis(song, version) is None

    # -- work ------------------------------------------------------------------------------------

    def claim_next(self, worker: str, job_id: int | None = None) -> int | None:
        """Claim the oldest runnable row (of `job_id`, if given); its id, or None."""
        now = utcnow()
        query = (
            select(AnalysisRecord.id)
            .where(AnalysisRecord.job_id.is_not(None), self._runnable(now))
            .order_by(AnalysisRecord.id)
            .limit(20)
        )
        if job_id is not None:
            query = query.where(AnalysisRecord.job_id == job_id)
        for record_id in self.session.scalars(query).all():
            if self._give_up_if_exhausted(record_id):
                continue
            if self.analysis.claim(record_id, worker):
                return record_id
        self.session.commit()
        return None

    def run_record(self, record_id: int, worker: str) -> str:
        """Process a row `worker` has claimed; mark its job running, then finished when done."""
        record = self.session.get(AnalysisRecord, record_id)
        job = record.job
        if job is not None and job.status == "queued":
            job.status, job.started_at = "running", utcnow()
            self.session.commit()
        force = bool(job and job.force)
        try:
            source = self.analysis.process_claimed(record_id, worker, force=force)
        except Exception:
            self.session.rollback()
            raise
        if job is not None:
            self.finish_if_done(job.id)
        return source

    def release(self, record_id: int, worker: str) -> bool:
        """Give back a row `worker` claimed and could not finish for a reason not the song's
        (the database went away): pending again at once, the claim not counted as an attempt.
        False when the row is no longer this worker's."""
        released = self.session.execute(
            update(AnalysisRecord)
            .where(AnalysisRecord.id == record_id, AnalysisRecord.claimed_by == worker,
                   AnalysisRecord.status == "in_progress")
            .values(status="pending", claimed_by=None, lease_expires_at=None,
                    attempts=AnalysisRecord.attempts - 1, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        self.session.commit()
        return released == 1

    def recover_stale(self) -> int:
        """Put rows of dead local workers and of lapsed leases back to pending; how many."""
        now = utcnow()
        host = socket.gethostname()
        stale = self.session.scalars(
            select(AnalysisRecord).where(
                AnalysisRecord.status == "in_progress", AnalysisRecord.job_id.is_not(None)
            )
        ).all()
        recovered = 0
        for record in stale:
            owner_host, _, rest = (record.claimed_by or "").partition(":")
            pid = rest.partition(":")[0]
            dead = owner_host == host and pid.isdigit() and not _pid_alive(int(pid))
            if dead or record.lease_expires_at is None or record.lease_expires_at < now:
                record.status, record.claimed_by, record.lease_expires_at = "pending", None, None
                record.enqueued_at = None
                recovered += 1
        self.session.commit()
        if recovered:
            log.warning("recovered %d analyses from dead or lapsed workers", recovered)
        # A worker that died between completing a job's last song and marking the job done.
        for job_id in self.unfinished_jobs():
            self.finish_if_done(job_id)
        return recovered

    def finish_if_done(self, job_id: int) -> bool:
        """Mark the job completed once none of its rows is pending or in progress."""
        counts = self.job_counts(job_id)
        job = self.session.get(Job, job_id)
        if counts["pending"] or counts["in_progress"] or job.status == "completed":
            return False
        job.status, job.finished_at = "completed", utcnow()
        if counts["failed"]:
            job.error_message = f"{counts['failed']} of {job.eligible_songs} songs failed"
        self.session.commit()
        return True

    def unfinished_jobs(self) -> list[int]:
        """Ids of jobs still queued or running."""
        return list(self.session.scalars(
            select(Job.id).where(Job.status.in_(("queued", "running"))).order_by(Job.id)
        ))

    def runnable_records(self, job_id: int | None = None, not_enqueued_since=None) -> list[int]:
        """Ids of rows a worker could claim now (for the RQ runner to enqueue)."""
        now = utcnow()
        query = select(AnalysisRecord.id).where(
            AnalysisRecord.job_id.is_not(None), self._runnable(now)
        )
        if job_id is not None:
            query = query.where(AnalysisRecord.job_id == job_id)
        if not_enqueued_since is not None:
            query = query.where(or_(AnalysisRecord.enqueued_at.is_(None),
                                    AnalysisRecord.enqueued_at < not_enqueued_since))
        return list(self.session.scalars(query.order_by(AnalysisRecord.id)))

    def mark_enqueued(self, record_ids: list[int]) -> None:
        """Remember when rows were put on the queue (so the sweeper does not re-send them)."""
        if record_ids:
            self.session.execute(
                update(AnalysisRecord).where(AnalysisRecord.id.in_(record_ids))
                .values(enqueued_at=utcnow()).execution_options(synchronize_session=False)
            )
        self.session.commit()

    def _runnable(self, now):
        return or_(
            AnalysisRecord.status == "pending",
            and_(AnalysisRecord.status == "in_progress", AnalysisRecord.lease_expires_at < now),
        )

    def _give_up_if_exhausted(self, record_id: int) -> bool:
        record = self.session.get(AnalysisRecord, record_id)
        if record.attempts < self.max_attempts:
            return False
        record.status = "failed"
        record.error_message = f"gave up after {record.attempts} attempts (worker died each time)"
        record.claimed_by, record.lease_expires_at, record.analyzed_at = None, None, utcnow()
        self.session.commit()
        if record.job_id is not None:
            self.finish_if_done(record.job_id)
        return True

    # -- progress --------------------------------------------------------------------------------

    def get_job(self, job_id: int) -> Job:
        """The job, or NotFound."""
        return get_or_404(self.session, Job, job_id, "job")

    def job_counts(self, job_id: int) -> dict:
        """Rows of a job by status."""
        rows = self.session.execute(
            select(AnalysisRecord.status, func.count())
            .where(AnalysisRecord.job_id == job_id)
            .group_by(AnalysisRecord.status)
        ).all()
        counts = dict.fromkeys(("pending", "in_progress", "completed", "failed"), 0)
        counts.update(dict(rows))
        return counts

    def latest_status_counts(self, song_ids_query) -> dict:
        """Songs by the status of their latest analysis; `not_started` when they have none."""
        latest_ids = (
            select(func.max(AnalysisRecord.id))
            .where(AnalysisRecord.song_id.in_(song_ids_query))
            .group_by(AnalysisRecord.song_id)
        )
        rows = self.session.execute(
            select(AnalysisRecord.status, func.count())
            .where(AnalysisRecord.id.in_(latest_ids))
            .group_by(AnalysisRecord.status)
        ).all()
        counts = dict.fromkeys(("completed", "failed", "pending", "in_progress"), 0)
        counts.update(dict(rows))
        total = self.session.scalar(select(func.count()).select_from(song_ids_query.subquery()))
        counts["not_started"] = total - sum(counts.values())
        counts["total"] = total
        return counts

    def playlist_counts(self, playlist_id: int) -> dict:
        """Songs of a playlist by the status of their latest analysis."""
        get_or_404(self.session, Playlist, playlist_id, "playlist")
        songs = select(PlaylistSong.song_id).where(PlaylistSong.playlist_id == playlist_id)
        return self.latest_status_counts(songs)

    def overall_counts(self) -> dict:
        """Every stored song by the status of its latest analysis, and whether jobs are active."""
        counts = self.latest_status_counts(select(Song.id))
        counts["active_jobs"] = len(self.unfinished_jobs())
        return counts

