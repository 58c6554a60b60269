"""Test songs and helpers shared by the route tests (fixtures are in conftest.py)."""

import time

from app.models import AnalysisRecord, Job, Playlist, PlaylistSong, Song

# Lyrics written for these tests (long enough to reach the model: more than 10 characters).
LYRICS = "Morning mercy rises over the quiet hills\nI will sing of Your faithfulness all my days"
OTHER_LYRICS = "Rivers run to the sea and the sea is not full\nStill my soul is waiting on You"
THIRD_LYRICS = "Lanterns on the water, a small boat heading home\nCarry me across, I am not alone"

TABLES = (Song, Playlist, PlaylistSong, AnalysisRecord, Job)


def song_body(**overrides) -> dict:
    """A valid `POST /api/songs` body."""
    return {"title": "Morning Mercy", "artist": "The Test Choir", "lyrics": LYRICS, **overrides}


def wait_for(probe, timeout: float = 10.0, every: float = 0.05):
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def warm(app):
    """Load `app`'s analyzer now (its smoke song counts as a model call); returns the app."""
    app.extensions["selah.model_store"].get()
    return app
