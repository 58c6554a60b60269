"""Helpers shared by the app tests: jobs over stored songs."""

from app.extensions import db
from app.models import Song
from app.runners import job_service
from app.services.analysis import lyrics_hash


def songs_job(app, n: int) -> int:
    """Store `n` new songs and submit a job over them; returns the job id."""
    with app.app_context():
        ids = []
        for i in range(n):
            lyrics = f"Line {i}: I lift my voice to sing of grace and mercy"
            song = Song(title=f"S{i}", artist="A", lyrics=lyrics, lyrics_hash=lyrics_hash(lyrics))
            db.session.add(song)
            db.session.flush()
            ids.append(song.id)
        db.session.commit()
        job = job_service(app).create_songs_job(ids)
        app.extensions["selah.runner"].submit(job.id)
        job_id = job.id
        db.session.remove()
        return job_id
