"""The analysis service (the legacy `SimplifiedChristianAnalysisService` role).

Runs the analyzer, caches results by normalised-lyrics hash and model version (a new model version
re-analyses; `force` re-analyses), and persists them into `analysis_results` with every legacy
column and the v3.1 columns filled. Takes a SQLAlchemy session; never imports Flask.
"""

import hashlib
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.models import AnalysisRecord, Song, utcnow
from app.services.errors import ServiceError, get_or_404
from selah.analyzers.base import MIN_LYRICS_CHARS, AnalysisResult
from selah.analyzers.columns import legacy_columns

_SPACE = re.compile(r"\s+")


def normalise_lyrics(text: str) -> str:
    """Unicode NFKC, case-folded, whitespace collapsed: what the cache treats as equal."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text or "").casefold()).strip()


def lyrics_hash(text: str) -> str:
    """SHA-256 hex of the normalised lyrics."""
    return hashlib.sha256(normalise_lyrics(text).encode("utf-8")).hexdigest()


def _analysable(lyrics: str) -> bool:
    """False for lyrics the no-lyrics rule answers (by title, so never cached by lyrics)."""
    return len((lyrics or "").strip()) > MIN_LYRICS_CHARS


def apply_result(record: AnalysisRecord, result: AnalysisResult, model_version: str) -> None:
    """Fill every column of `record` from `result`; status completed, or failed on error."""
    for name, value in legacy_columns(result).items():
        setattr(record, name, value)
    record.analyzed_at = utcnow()
    record.model_version = model_version
    record.result = result.to_dict()
    record.claimed_by = None
    record.lease_expires_at = None


# Characters of lyrics in one group of a timed inline batch: a few seconds of model time here,
# big enough to keep the model's batching (one group per request for most batches).
INLINE_GROUP_CHARS = 40_000


def _groups(indices: list[int], songs: list[dict]) -> list[list[int]]:
    """`indices` split, in order, into runs of at most INLINE_GROUP_CHARS characters of lyrics
    (a longer song is a group of its own)."""
    groups: list[list[int]] = []
    size = 0
    for index in indices:
        chars = len(songs[index].get("lyrics") or "")
        if not groups or size + chars > INLINE_GROUP_CHARS:
            groups.append([])
            size = 0
        groups[-1].append(index)
        size += chars
    return groups


class AnalysisTimedOut(ServiceError):
    """An inline analysis that spent its time budget before every song was analysed."""

    status = 503
    code = "request_timeout"
    headers = {"Retry-After": "1"}


class ResultCache:
    """A bounded, thread-safe LRU of `to_dict()` results keyed by (lyrics hash, model version).

    Serves inline analyses (`POST /api/analyze`), which have no stored song to cache against;
    the model is deterministic, so a hit is the answer the model would give again.
    """

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[tuple[str, str], dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> dict | None:
        """The cached result for `key`, or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: dict) -> None:
        """Remember `value`, evicting the least recently used beyond `size`."""
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class AnalysisService:
    """Analyses songs with the store's analyzer, through the cache, into the database."""

    def __init__(self, session: Session, store, metrics=None, lease_seconds: float = 120.0,
                 result_cache: ResultCache | None = None):
        self.session = session
        self.store = store
        self.result_cache = result_cache
        self.metrics = metrics
        self.lease = timedelta(seconds=lease_seconds)

    # -- stateless analysis (POST /api/analyze) ------------------------------------------------

    def analyze_batch(self, songs: list[dict], force: bool = False,
                      timeout: float = 0.0) -> list[AnalysisResult]:
        """Analyse songs given inline; cached results are reused unless `force`.

        With a `timeout` (seconds, 0 for none) the songs run in groups of at most
        INLINE_GROUP_CHARS characters, and once the time is spent no further group starts:
        `AnalysisTimedOut` says how far it got. Finished groups are in the result cache, so a
        retry carries on from there.
        """
        analyzer = self.store.get()
        results: list[AnalysisResult | None] = [None] * len(songs)
        todo: list[int] = []
        version = analyzer.model_version
        for index, song in enumerate(songs):
            cached = None if force else self._cached_inline(song["lyrics"], version)
            if cached is not None:
                result = AnalysisResult.from_dict(cached)
                result.title, result.artist = song["title"], song["artist"]
                result.user_id = song.get("user_id")
                results[index] = result
                self._count(result, "cache")
            else:
                todo.append(index)
        deadline = time.monotonic() + timeout if timeout > 0 else None
        groups = _groups(todo, songs) if deadline is not None else [todo] if todo else []
        for number, group in enumerate(groups):
            if number and time.monotonic() > deadline:
                done = len(songs) - sum(len(rest) for rest in groups[number:])
                raise AnalysisTimedOut(
                    f"the inline analysis ran past its {timeout:g} s budget "
                    f"(REQUEST_TIMEOUT_SECONDS) after {done} of {len(songs)} songs; the finished "
                    f"ones are cached, so a retry carries on from there (or send the songs as a "
                    f"background job)", {"analysed": done, "total": len(songs),
                                         "timeout_seconds": timeout})
            fresh = self._run([songs[i] for i in group], analyzer)
            for index, result in zip(group, fresh):
                results[index] = result
                lyrics = songs[index]["lyrics"]
                if (self.result_cache is not None and self.result_cache.size > 0
                        and result.is_successful() and _analysable(lyrics)):
                    self.result_cache.put((lyrics_hash(lyrics), version), result.to_dict())
        return results  # type: ignore[return-value]

    def _cached_inline(self, lyrics: str, version: str) -> dict | None:
        if not _analysable(lyrics):
            return None
        if self.result_cache is not None:
            hit = self.result_cache.get((lyrics_hash(lyrics), version))
            if hit is not None:
                return hit
        stored = self._cached(lyrics, version)
        return stored.result if stored is not None else None

    # -- stored songs ----------------------------------------------------------------------------

    def analyze_song(self, song_id: int, force: bool = False, worker: str = "request"):
        """Analyse a stored song now. Returns `(record, source)`; source is cache, model or busy.

        `busy` means another worker holds this song for the current model version: the record
        returned is that worker's, still in progress.
        """
        song = get_or_404(self.session, Song, song_id, "song")
        analyzer = self.store.get()
        version = analyzer.model_version
        if not force:
            current = self.current_analysis(song, version)
            if current is not None:
                self._count_record(current, "cache")
                return current, "cache"
        active = self.session.scalars(
            select(AnalysisRecord).where(
                AnalysisRecord.song_id == song_id,
                AnalysisRecord.model_version == version,
                AnalysisRecord.status.in_(("pending", "in_progress")),
            ).order_by(AnalysisRecord.id.desc())
        ).first()
        if active is not None and not self.claim(active.id, worker):
            self.session.refresh(active)
            if active.status != "completed":
                return active, "busy"
            return active, "cache"
        if active is None:
            active = AnalysisRecord(
                song_id=song_id, status="in_progress", model_version=version,
                lyrics_hash=song.lyrics_hash, claimed_by=worker, attempts=1,
                lease_expires_at=utcnow() + self.lease,
            )
            self.session.add(active)
            self.session.commit()
        source = self.process_claimed(active.id, worker, force=force)
        return self.session.get(AnalysisRecord, active.id), source

    def claim(self, record_id: int, worker: str) -> bool:
        """Atomically take a pending (or lease-expired) row for `worker`; True when taken."""
        now = utcnow()
        taken = self.session.execute(
            update(AnalysisRecord)
            .where(
                AnalysisRecord.id == record_id,
                or_(
                    AnalysisRecord.status == "pending",
                    (AnalysisRecord.status == "in_progress")
                    & (AnalysisRecord.lease_expires_at < now),
                ),
            )
            .values(
                status="in_progress", claimed_by=worker, lease_expires_at=now + self.lease,
                attempts=AnalysisRecord.attempts + 1, updated_at=now,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        self.session.commit()
        return taken == 1

    def process_claimed(self, record_id: int, worker: str, force: bool = False) -> str:
        """Analyse a row this worker holds and complete it in one transaction.

        Returns the source: `cache` (an identical analysis existed), `model`, or `lost` when the
        lease expired and another worker took the row meanwhile (nothing is written then).
        """
        record = self.session.get(AnalysisRecord, record_id)
        song = record.song
        analyzer = self.store.get()
        version = analyzer.model_version
        cached = None if force else self._cached(song.lyrics, version, exclude=record_id)
        if cached is not None:
            result, source = AnalysisResult.from_dict(cached.result), "cache"
            result.title, result.artist = song.title, song.artist
        else:
            song_input = {"title": song.title, "artist": song.artist, "lyrics": song.lyrics}
            result, source = self._run([song_input], analyzer)[0], "model"
        # Complete only if still ours: a worker whose lease lapsed must not overwrite another's.
        self.session.refresh(record, with_for_update=self._row_lock())
        if record.claimed_by != worker or record.status != "in_progress":
            self.session.rollback()
            return "lost"
        apply_result(record, result, version)
        record.lyrics_hash = song.lyrics_hash
        record.from_cache = source == "cache"
        self.session.commit()
        if source == "cache":
            self._count(result, "cache")
        return source

    def current_analysis(self, song: Song, version: str) -> AnalysisRecord | None:
        """The song's latest row when it is a completed analysis of its current lyrics by
        `version`, else None (the song then needs analysing)."""
        latest = self.latest(song.id)
        if (
            latest is not None
            and latest.status == "completed"
            and latest.model_version == version
            and latest.lyrics_hash == song.lyrics_hash
        ):
            return latest
        return None

    def latest(self, song_id: int) -> AnalysisRecord | None:
        """The song's latest analysis row (by insertion order), or None."""
        return self.session.scalars(
            select(AnalysisRecord)
            .where(AnalysisRecord.song_id == song_id)
            .order_by(AnalysisRecord.id.desc())
            .limit(1)
        ).first()

    # -- helpers ---------------------------------------------------------------------------------

    def _cached(self, lyrics: str, version: str, exclude: int | None = None):
        if not _analysable(lyrics):
            return None
        query = select(AnalysisRecord).where(
            AnalysisRecord.lyrics_hash == lyrics_hash(lyrics),
            AnalysisRecord.model_version == version,
            AnalysisRecord.status == "completed",
            AnalysisRecord.result.is_not(None),
        )
        if exclude is not None:
            query = query.where(AnalysisRecord.id != exclude)
        return self.session.scalars(query.order_by(AnalysisRecord.id.desc()).limit(1)).first()

    def _run(self, songs: list[dict], analyzer) -> list[AnalysisResult]:
        started = time.perf_counter()
        results = analyzer.analyze_songs_batch(songs)
        if self.metrics is not None:
            per_song = (time.perf_counter() - started) / max(len(songs), 1)
            for result in results:
                self.metrics.analysis_seconds.observe(per_song)
                self._count(result, "model")
        return results

    def _count(self, result: AnalysisResult, source: str) -> None:
        if self.metrics is not None:
            outcome = "completed" if result.is_successful() else "failed"
            self.metrics.analyses.labels(outcome, source).inc()

    def _count_record(self, record: AnalysisRecord, source: str) -> None:
        if self.metrics is not None:
            self.metrics.analyses.labels(record.status, source).inc()

    def _row_lock(self) -> bool:
        return self.session.get_bind().dialect.name != "sqlite"
