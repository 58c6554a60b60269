"""Jobs: eligibility, atomic claims, recovery of dead workers, attempts, progress."""

import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.models import AnalysisRecord, Job, utcnow
from app.services.errors import InvalidInput, NotFound
from app.services.jobs import JobService, worker_id
from selah.analyzers.store import ModelStore
from tests.fake_analyzer import FakeAnalyzer


@pytest.fixture
def jobs(ctx):
    store = ModelStore(FakeAnalyzer, {})
    store.get()
    return JobService(ctx, store, lease_seconds=30, max_attempts=3)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _drain(jobs, worker="w"):
    done = []
    while (record_id := jobs.claim_next(worker)) is not None:
        done.append((record_id, jobs.run_record(record_id, worker)))
    return done


def test_playlist_job_creates_one_pending_row_per_song(jobs, add_playlist):
    playlist_id, song_ids = add_playlist(3)
    job = jobs.create_playlist_job(playlist_id)
    assert (job.kind, job.status, job.total_songs, job.eligible_songs) == ("playlist", "queued", 3, 3)
    rows = jobs.session.scalars(select(AnalysisRecord).where(AnalysisRecord.job_id == job.id)).all()
    assert sorted(r.song_id for r in rows) == song_ids
    assert {r.status for r in rows} == {"pending"}
    assert jobs.playlist_counts(playlist_id)["pending"] == 3


def test_analysed_and_queued_songs_are_not_eligible_again(jobs, add_playlist):
    playlist_id, song_ids = add_playlist(3)
    jobs.analysis.analyze_song(song_ids[0])
    first = jobs.create_playlist_job(playlist_id)
    assert first.eligible_songs == 2
    second = jobs.create_playlist_job(playlist_id)  # the other two are still queued
    assert second.eligible_songs == 0 and second.status == "completed"
    forced = jobs.create_playlist_job(playlist_id, force=True)
    assert forced.eligible_songs == 1  # only the analysed song; the others are queued already


def test_workers_complete_every_song_once_and_finish_the_job(jobs, add_playlist):
    playlist_id, song_ids = add_playlist(4)
    job = jobs.create_playlist_job(playlist_id)
    done = _drain(jobs)
    assert len(done) == 4 and {source for _, source in done} == {"model"}
    jobs.session.refresh(job)
    assert job.status == "completed" and job.started_at and job.finished_at
    assert jobs.job_counts(job.id) == {"pending": 0, "in_progress": 0, "completed": 4, "failed": 0}
    counts = jobs.playlist_counts(playlist_id)
    assert (counts["completed"], counts["total"], counts["not_started"]) == (4, 4, 0)


def test_a_claimed_row_cannot_be_claimed_again(jobs, add_playlist):
    playlist_id, _ = add_playlist(1)
    jobs.create_playlist_job(playlist_id)
    record_id = jobs.claim_next("a")
    assert record_id is not None
    assert jobs.claim_next("b") is None
    assert not jobs.analysis.claim(record_id, "b")


def test_rows_of_a_dead_local_process_are_recovered_at_once(jobs, add_playlist):
    playlist_id, _ = add_playlist(2)
    job = jobs.create_playlist_job(playlist_id)
    dead = f"{socket.gethostname()}:{_dead_pid()}:thread-0"
    record_id = jobs.claim_next(dead)
    live = jobs.claim_next(worker_id("alive"))
    assert jobs.recover_stale() == 1
    statuses = dict(jobs.session.execute(
        select(AnalysisRecord.id, AnalysisRecord.status).where(AnalysisRecord.job_id == job.id)).all())
    assert statuses == {record_id: "pending", live: "in_progress"}


def test_rows_with_a_lapsed_lease_are_recovered(jobs, add_playlist):
    playlist_id, _ = add_playlist(1)
    jobs.create_playlist_job(playlist_id)
    record_id = jobs.claim_next("remote-host:1:rq")
    assert jobs.recover_stale() == 0  # another host, lease still running
    record = jobs.session.get(AnalysisRecord, record_id)
    record.lease_expires_at = utcnow() - timedelta(seconds=1)
    jobs.session.commit()
    assert jobs.claim_next("other") == record_id  # claimable even before the sweep
    record.lease_expires_at = utcnow() - timedelta(seconds=1)
    jobs.session.commit()
    assert jobs.recover_stale() == 1


def test_a_song_that_kills_every_worker_fails_after_max_attempts(jobs, add_playlist):
    playlist_id, _ = add_playlist(1)
    job = jobs.create_playlist_job(playlist_id)
    for attempt in range(3):
        assert jobs.claim_next(f"{socket.gethostname()}:{_dead_pid()}:w") is not None
        jobs.recover_stale()
    assert jobs.claim_next("w") is None
    record = jobs.session.scalars(select(AnalysisRecord)).one()
    assert record.status == "failed" and "gave up after 3 attempts" in record.error_message
    jobs.session.refresh(job)
    assert job.status == "completed" and job.error_message == "1 of 1 songs failed"


def test_songs_job_refuses_unknown_ids_and_stores_nothing(jobs, add_song):
    known = add_song()
    with pytest.raises(InvalidInput, match=r"unknown song ids: \[404\]"):
        jobs.create_songs_job([known, 404])
    assert jobs.session.scalars(select(Job)).all() == []


def test_all_job_and_overall_counts(jobs, add_song):
    ids = [add_song() for _ in range(3)]
    jobs.analysis.analyze_song(ids[0])
    job = jobs.create_all_job()
    assert (job.total_songs, job.eligible_songs) == (3, 2)
    counts = jobs.overall_counts()
    assert (counts["completed"], counts["pending"], counts["active_jobs"]) == (1, 2, 1)
    _drain(jobs)
    counts = jobs.overall_counts()
    assert (counts["completed"], counts["total"], counts["active_jobs"]) == (3, 3, 0)


def test_unknown_job_and_playlist(jobs):
    with pytest.raises(NotFound):
        jobs.get_job(7)
    with pytest.raises(NotFound):
        jobs.create_playlist_job(7)
    with pytest.raises(NotFound):
        jobs.playlist_counts(7)


def test_recovery_finishes_a_job_whose_worker_died_after_its_last_song(jobs, add_playlist):
    playlist_id, _ = add_playlist(1)
    job = jobs.create_playlist_job(playlist_id)
    record_id = jobs.claim_next("w")
    jobs.analysis.process_claimed(record_id, "w")  # the song is done; finish_if_done never ran
    jobs.session.refresh(job)
    assert job.status == "queued"
    jobs.recover_stale()
    jobs.session.refresh(job)
    assert job.status == "completed" and job.finished_at is not None


def test_release_gives_a_claim_back_without_spending_an_attempt(jobs, add_playlist):
    playlist_id, _ = add_playlist(1)
    job = jobs.create_playlist_job(playlist_id)
    record_id = jobs.claim_next("w1")
    assert jobs.release(record_id, "w2") is False  # not w2's to give back
    assert jobs.release(record_id, "w1") is True
    record = jobs.session.get(AnalysisRecord, record_id)
    jobs.session.refresh(record)
    assert (record.status, record.claimed_by, record.attempts) == ("pending", None, 0)
    assert jobs.release(record_id, "w1") is False  # pending already
    assert jobs.claim_next("w2") == record_id  # at once, not after a lease
    jobs.run_record(record_id, "w2")
    assert jobs.get_job(job.id).status == "completed"
