"""Fixtures for service tests: a session inside an app context and a song factory."""

import pytest

from app.extensions import db
from app.models import Playlist, PlaylistSong, Song
from app.services.analysis import lyrics_hash


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request, make_app):
    """The service tests run on the embedded SQLite and on PostgreSQL."""
    if request.param == "postgres":
        return make_app(DATABASE_URL=request.getfixturevalue("pg_database"))
    return make_app()


@pytest.fixture
def ctx(app):
    """An app context with the app's session."""
    with app.app_context():
        yield db.session
        db.session.remove()


@pytest.fixture
def add_song(ctx):
    """Store a song (lyrics written for these tests) and return its id."""
    counter = iter(range(10_000))

    def factory(lyrics: str | None = None, title: str | None = None) -> int:
        n = next(counter)
        lyrics = lyrics if lyrics is not None else f"Song number {n}, sung to the morning light"
        song = Song(title=title or f"Song {n}", artist="Test Band", lyrics=lyrics,
                    lyrics_hash=lyrics_hash(lyrics))
        ctx.add(song)
        ctx.commit()
        return song.id

    return factory


@pytest.fixture
def add_playlist(ctx, add_song):
    """Store a playlist of `n` new songs; returns (playlist id, song ids)."""

    def factory(n: int) -> tuple[int, list[int]]:
        song_ids = [add_song() for _ in range(n)]
        playlist = Playlist(name="Sunday")
        ctx.add(playlist)
        ctx.flush()
        for position, song_id in enumerate(song_ids):
            ctx.add(PlaylistSong(playlist_id=playlist.id, song_id=song_id, position=position))
        ctx.commit()
        return playlist.id, song_ids

    return factory
