"""The service errors' shared lookup: every service's not-found has one message and shape."""

import pytest

from app.models import Job, Playlist, Song
from app.services.catalog import CatalogService
from app.services.errors import NotFound, get_or_404
from app.services.jobs import JobService
from selah.analyzers.store import ModelStore
from tests.fake_analyzer import FakeAnalyzer


@pytest.mark.parametrize("model,what", [(Song, "song"), (Playlist, "playlist"), (Job, "job")])
def test_get_or_404_names_the_missing_id(ctx, model, what):
    with pytest.raises(NotFound) as caught:
        get_or_404(ctx, model, 4242, what)
    assert caught.value.message == f"{what} 4242 not found"
    assert caught.value.details == {f"{what}_id": 4242}
    assert caught.value.status == 404


def test_get_or_404_returns_the_row(ctx, add_song):
    song_id = add_song()
    assert get_or_404(ctx, Song, song_id, "song").id == song_id


def _jobs(session):
    return JobService(session, ModelStore(FakeAnalyzer, {}))


@pytest.mark.parametrize("lookup,message,details", [
    (lambda s: CatalogService(s).get_song(77), "song 77 not found", {"song_id": 77}),
    (lambda s: CatalogService(s).get_playlist(77), "playlist 77 not found", {"playlist_id": 77}),
    (lambda s: _jobs(s).get_job(77), "job 77 not found", {"job_id": 77}),
    (lambda s: _jobs(s).create_playlist_job(77), "playlist 77 not found", {"playlist_id": 77}),
    (lambda s: _jobs(s).playlist_counts(77), "playlist 77 not found", {"playlist_id": 77}),
])
def test_services_raise_the_shared_not_found(ctx, lookup, message, details):
    with pytest.raises(NotFound) as caught:
        lookup(ctx)
    assert (caught.value.message, caught.value.details) == (message, details)
