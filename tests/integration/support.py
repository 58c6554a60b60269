"""What the crash and fault tests share: real worker processes, job counts read from the
database, a playlist job of written songs, and the check that every song completed exactly once.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from app.extensions import db
from app.models import AnalysisRecord, Job, Playlist, PlaylistSong, Song
from app.runners import job_service
from app.services.analysis import lyrics_hash

ROOT = Path(__file__).resolve().parents[2]


def start_worker(args: list[str], delay: float, log: Path, **env) -> subprocess.Popen:
    """`python -m tests.integration.worker_main ARGS` with the fake analyzer taking `delay`
    seconds a song; `env` adds variables (JOB_LEASE_SECONDS...). Output appended to `log`."""
    env = {**os.environ, "FAKE_DELAY": str(delay), "PYTHONPATH": str(ROOT),
           **{k: str(v) for k, v in env.items()}}
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "tests.integration.worker_main", *args],
                                   cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    process.log = log
    return process


def counts(app, job_id: int) -> dict:
    """The job's rows by status, and its own status under `job`."""
    with app.app_context():
        try:
            service = job_service(app)
            return {**service.job_counts(job_id), "job": service.get_job(job_id).status}
        finally:
            db.session.remove()


def wait(app, job_id: int, until, timeout: float, worker: subprocess.Popen | None) -> dict:
    """Poll the job's counts until `until(counts)`; fail when `worker` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = counts(app, job_id)
        if until(now):
            return now
        if worker is not None and worker.poll() is not None:
            raise AssertionError(f"worker exited early: {worker.log.read_text()[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out; counts {counts(app, job_id)}")


def finished(total: int):
    """`until` for `wait`: every one of `total` rows completed and the job marked so."""
    return lambda c: c["completed"] == total and c["job"] == "completed"


def playlist_job(app, songs: int, name: str = "Crash test", submit: bool = True) -> int:
    """Store a playlist of `songs` written songs and a job over it; hand it to the app's runner."""
    with app.app_context():
        playlist = Playlist(name=name)
        db.session.add(playlist)
        db.session.flush()
        for position in range(songs):
            lyrics = f"{name} verse {position}: we walk together through the valley and the light"
            song = Song(title=f"Song {position}", artist="Band", lyrics=lyrics,
                        lyrics_hash=lyrics_hash(lyrics))
            db.session.add(song)
            db.session.flush()
            db.session.add(PlaylistSong(playlist_id=playlist.id, song_id=song.id,
                                        position=position))
        db.session.commit()
        job = job_service(app).create_playlist_job(playlist.id)
        if submit:
            app.extensions["selah.runner"].submit(job.id)
        job_id = job.id
        db.session.remove()
        return job_id


def assert_each_song_completed_once(app, songs: int, job_ids: list[int]) -> None:
    """Every song has exactly one completed row, no row is left unfinished or failed, and every
    job is completed without error."""
    with app.app_context():
        per_song = db.session.execute(
            select(AnalysisRecord.song_id, func.count())
            .where(AnalysisRecord.status == "completed", AnalysisRecord.model_version == "fake-1")
            .group_by(AnalysisRecord.song_id)
        ).all()
        assert len(per_song) == songs, f"{songs - len(per_song)} songs never completed"
        assert {count for _, count in per_song} == {1}, "a song was completed twice"
        leftovers = db.session.execute(
            select(AnalysisRecord.status, func.count()).where(AnalysisRecord.status != "completed")
            .group_by(AnalysisRecord.status)).all()
        assert leftovers == [], f"rows not completed: {leftovers}"
        for job_id in job_ids:
            job = db.session.get(Job, job_id)
            assert job.status == "completed" and job.error_message is None, job_id
        db.session.remove()
