"""The analysis service: persistence of every column, the cache, force, model versions."""

import pytest
from sqlalchemy import func, select

from app.models import AnalysisRecord
from app.services.analysis import AnalysisService, lyrics_hash, normalise_lyrics
from app.services.errors import NotFound
from selah.analyzers.store import ModelStore
from tests.fake_analyzer import FakeAnalyzer

LEGACY_COLUMNS = [
    "status", "score", "concern_level", "explanation", "themes", "concerns",
    "purity_flags_details", "positive_themes_identified", "biblical_themes",
    "supporting_scripture", "problematic_content", "analyzed_at", "created_at", "updated_at",
]
V31_COLUMNS = [
    "verdict", "purity_score", "formation_risk", "doctrinal_clarity", "confidence",
    "needs_review", "narrative_voice", "lament_filter_applied", "framework_data",
]


def _service(session, version="fake-1", analyzer_cls=FakeAnalyzer):
    store = ModelStore(analyzer_cls, {"FAKE_MODEL_VERSION": version})
    store.get()  # load (and run the smoke prediction) before tests count model calls
    return AnalysisService(session, store)


def _rows(session, song_id):
    return session.scalar(
        select(func.count()).select_from(AnalysisRecord).where(AnalysisRecord.song_id == song_id))


def test_normalisation_ignores_case_spacing_and_unicode_forms():
    assert normalise_lyrics("  Amazing\tGRACE\n\nhow  sweet ") == "amazing grace how sweet"
    assert lyrics_hash("ﬁnd me") == lyrics_hash("FIND me")  # NFKC folds the ligature
    assert lyrics_hash("a b") != lyrics_hash("a  c")


def test_analysis_fills_every_legacy_and_v31_column(ctx, add_song):
    song_id = add_song()
    record, source = _service(ctx).analyze_song(song_id)
    assert source == "model" and record.status == "completed"
    for column in LEGACY_COLUMNS + V31_COLUMNS:
        assert getattr(record, column) is not None, column
    assert record.score == record.result["scoring_results"]["final_score"]
    assert record.verdict == record.result["model_analysis"]["framework"]["verdict"]
    assert record.model_version == "fake-1"
    assert record.lyrics_hash == lyrics_hash(record.song.lyrics)
    assert record.analyzed_at.tzinfo is not None


def test_cached_result_is_reused_until_forced(ctx, add_song):
    song_id = add_song()
    service = _service(ctx)
    first, _ = service.analyze_song(song_id)
    calls = FakeAnalyzer.calls
    again, source = service.analyze_song(song_id)
    assert (again.id, source, FakeAnalyzer.calls) == (first.id, "cache", calls)
    forced, source = service.analyze_song(song_id, force=True)
    assert source == "model" and forced.id != first.id and FakeAnalyzer.calls == calls + 1
    assert _rows(ctx, song_id) == 2


def test_same_lyrics_of_another_song_come_from_the_cache(ctx, add_song):
    first = add_song("Oh how He loves us so, oh how He loves")
    second = add_song("oh how he loves us so,   OH HOW HE LOVES", title="Cover")
    service = _service(ctx)
    original, _ = service.analyze_song(first)
    calls = FakeAnalyzer.calls
    copy, source = service.analyze_song(second)
    assert source == "cache" and FakeAnalyzer.calls == calls
    assert copy.from_cache and copy.song_id == second
    assert copy.score == original.score
    assert copy.result["title"] == "Cover"


def test_a_new_model_version_re_analyses(ctx, add_song):
    song_id = add_song()
    _service(ctx, "fake-1").analyze_song(song_id)
    upgraded = _service(ctx, "fake-2")
    calls = FakeAnalyzer.calls
    record, source = upgraded.analyze_song(song_id)
    assert source == "model" and FakeAnalyzer.calls == calls + 1
    assert record.model_version == "fake-2"


def test_changed_lyrics_re_analyse(ctx, add_song):
    song_id = add_song()
    service = _service(ctx)
    first, _ = service.analyze_song(song_id)
    song = first.song
    song.lyrics = "Entirely new words for the second verse of this song"
    song.lyrics_hash = lyrics_hash(song.lyrics)
    ctx.commit()
    second, source = service.analyze_song(song_id)
    assert source == "model" and second.id != first.id


class _Failing(FakeAnalyzer):
    def _analyze_batch(self, items):
        if "smoke" in items[0][0]:
            return super()._analyze_batch(items)
        raise RuntimeError("tokenizer crashed")


def test_a_model_error_is_stored_as_failed_and_not_cached(ctx, add_song):
    song_id = add_song()
    service = _service(ctx, analyzer_cls=_Failing)
    record, _ = service.analyze_song(song_id)
    assert record.status == "failed" and "tokenizer crashed" in record.error_message
    assert record.score == 0.0 and record.explanation.startswith("Analysis failed")
    record, source = service.analyze_song(song_id)
    assert source == "model"


def test_unknown_song(ctx):
    with pytest.raises(NotFound, match="song 999 not found"):
        _service(ctx).analyze_song(999)


def test_a_song_held_by_another_worker_is_not_analysed_twice(ctx, add_song):
    song_id = add_song()
    service = _service(ctx)
    ctx.add(AnalysisRecord(song_id=song_id, status="pending", model_version="fake-1"))
    ctx.commit()
    pending = ctx.scalars(select(AnalysisRecord)).one()
    assert service.claim(pending.id, "other-worker")
    calls = FakeAnalyzer.calls
    record, source = service.analyze_song(song_id)
    assert (record.id, source, record.status, FakeAnalyzer.calls) == (
        pending.id, "busy", "in_progress", calls)


def test_a_worker_whose_lease_was_taken_writes_nothing(ctx, add_song):
    song_id = add_song()
    service = _service(ctx)
    ctx.add(AnalysisRecord(song_id=song_id, status="pending", model_version="fake-1"))
    ctx.commit()
    record = ctx.scalars(select(AnalysisRecord)).one()
    assert service.claim(record.id, "slow-worker")
    record.claimed_by = "fast-worker"  # the lease lapsed and another worker took the row
    ctx.commit()
    assert service.process_claimed(record.id, "slow-worker") == "lost"
    ctx.refresh(record)
    assert record.status == "in_progress" and record.result is None


def test_inline_batch_uses_the_cache(ctx, add_song):
    service = _service(ctx)
    lyrics = "Through every storm You hold me, through every night You stay"
    song_id = add_song(lyrics)
    stored, _ = service.analyze_song(song_id)
    calls = FakeAnalyzer.calls
    results = service.analyze_batch([
        {"title": "Inline", "artist": "B", "lyrics": lyrics},
        {"title": "Other", "artist": "B", "lyrics": "A different song about the sea and sky"},
    ])
    assert FakeAnalyzer.calls == calls + 1
    assert results[0].title == "Inline" and results[0].get_final_score() == stored.score
    assert results[1].title == "Other"


def test_inline_analyses_are_remembered_per_model_version(ctx):
    from app.services.analysis import ResultCache

    store = ModelStore(FakeAnalyzer, {})
    store.get()
    cache = ResultCache(2)
    service = AnalysisService(ctx, store, result_cache=cache)
    song = {"title": "Inline", "artist": "B", "lyrics": "Sing a new song unto the Lord of all"}
    first = service.analyze_batch([song])[0]
    calls = FakeAnalyzer.calls
    again = service.analyze_batch([{**song, "title": "Renamed"}])[0]
    assert FakeAnalyzer.calls == calls and again.title == "Renamed"
    assert again.get_final_score() == first.get_final_score()
    service.analyze_batch([song], force=True)
    assert FakeAnalyzer.calls == calls + 1
    other = ModelStore(FakeAnalyzer, {"FAKE_MODEL_VERSION": "fake-2"})
    other.get()
    calls = FakeAnalyzer.calls
    AnalysisService(ctx, other, result_cache=cache).analyze_batch([song])
    assert FakeAnalyzer.calls == calls + 1  # a new model version is not served the old answer


def test_result_cache_evicts_the_least_recently_used():
    from app.services.analysis import ResultCache

    cache = ResultCache(2)
    cache.put(("a", "v"), {"n": 1})
    cache.put(("b", "v"), {"n": 2})
    assert cache.get(("a", "v")) == {"n": 1}
    cache.put(("c", "v"), {"n": 3})
    assert cache.get(("b", "v")) is None and len(cache) == 2
    disabled = ResultCache(0)
    disabled.put(("a", "v"), {"n": 1})
    assert disabled.get(("a", "v")) is None
