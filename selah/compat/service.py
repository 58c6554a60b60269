"""`SimplifiedChristianAnalysisService` for the web app: Selah's results, stored as Selah made them.

The web app's own service of that name takes the analyzer's result and changes it: it subtracts
15 points per concern its regex detector finds (at most 45) and caps such songs at 69, replaces
the scripture with its own mapper's, and its storage never writes the verdict columns. This
replacement keeps its calls (`analyze_song`, `analyze_song_content`, `analyze_songs_batch`, the
`hf_analyzer` and `ai_analyzer` attributes) and returns Selah's `AnalysisResult` untouched; and it
stores results into the web app's own `analysis_results` table with every column as Selah computed
it (`selah.analyzers.columns.legacy_columns`): `analyze_and_store(song_id)` for one song,
`analyze_and_store_many(song_ids)` for a playlist's songs in batches.

The web app's tables are found, not imported: the mapped class of the table `analysis_results`
in the current app's Flask-SQLAlchemy registry, and the class of the table its `song_id`
references (the song's `title` or `name`, `artist` and `lyrics` are read). `session=`,
`song_model=` and `result_model=` name them outright, for an app without Flask-SQLAlchemy.
"""

import json
from datetime import datetime, timezone
from typing import Any, Iterable

from selah.analyzers.base import AnalysisResult
from selah.analyzers.columns import legacy_columns
from selah.compat.analyzer import HuggingFaceAnalyzer

RESULTS_TABLE = "analysis_results"


class HostTablesNotFound(RuntimeError):
    """The web app's session or tables could not be found; the message says what to pass."""


class SimplifiedChristianAnalysisService:
    """The web app's analysis service: Selah's results returned and stored unchanged."""

    def __init__(self, session=None, song_model=None, result_model=None, batch_size: int = 32):
        self.hf_analyzer = HuggingFaceAnalyzer()
        self.ai_analyzer = self.hf_analyzer  # the name the web app's tests read
        self.batch_size = batch_size
        self._session, self._song_model, self._result_model = session, song_model, result_model

    # -- the legacy calls: results only ----------------------------------------------------------

    def analyze_song(
        self, title: str, artist: str, lyrics: str, user_id: int | None = None
    ) -> AnalysisResult:
        """Selah's analysis of one song, unchanged (no second penalty, Selah's scripture)."""
        return self.hf_analyzer.analyze_song(title, artist, lyrics, user_id)

    def analyze_song_content(self, song_title: str, artist: str, lyrics: str) -> AnalysisResult:
        """The legacy name of `analyze_song`."""
        return self.analyze_song(song_title, artist, lyrics)

    def analyze_songs_batch(self, songs_data: list[dict]) -> list[AnalysisResult]:
        """Selah's analyses of many songs (dicts of title, artist, lyrics, user_id), in order."""
        return self.hf_analyzer.analyze_songs_batch(songs_data)

    # -- stored rows ------------------------------------------------------------------------------

    def analyze_and_store(self, song_id: int, force: bool = False, user_id: int | None = None):
        """Analyse a stored song and add its `analysis_results` row; returns the row.

        Without `force`, the song's latest completed row is returned as it is. A song that does
        not exist raises `LookupError`.
        """
        return self.analyze_and_store_many([song_id], force=force, user_id=user_id)[0]

    def analyze_and_store_many(
        self, song_ids: Iterable[int], force: bool = False, user_id: int | None = None
    ) -> list:
        """`analyze_and_store` for many songs, analysed `batch_size` at a time; rows in order.

        Each batch is committed when it is stored, so a process that dies loses at most the
        batch in flight, and a rerun without `force` skips the songs already stored.
        """
        session, song_model, result_model = self._tables()
        ids = list(song_ids)
        rows: dict[int, Any] = {}
        todo = []
        for song_id in ids:
            song = session.get(song_model, song_id)
            if song is None:
                raise LookupError(f"song {song_id} not found")
            latest = None if force else self.latest_analysis(song_id)
            if latest is not None and latest.status == "completed":
                rows[song_id] = latest
            elif song_id not in rows:
                rows[song_id] = None
                todo.append(song)
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            results = self.analyze_songs_batch([_song_input(song, user_id) for song in batch])
            for song, result in zip(batch, results):
                rows[song.id] = self._add_row(session, result_model, song.id, result, user_id)
            session.commit()
        return [rows[song_id] for song_id in ids]

    def store_result(self, song_id: int, result: AnalysisResult, user_id: int | None = None):
        """Add an `analysis_results` row for `result` (committed); returns the row."""
        session, _, result_model = self._tables()
        row = self._add_row(session, result_model, song_id, result, user_id)
        session.commit()
        return row

    def latest_analysis(self, song_id: int):
        """The song's latest `analysis_results` row (by time, then id), or None."""
        session, _, result_model = self._tables()
        order = [result_model.id.desc()]
        if "created_at" in result_model.__table__.columns:
            order.insert(0, result_model.created_at.desc())
        return (session.query(result_model).filter(result_model.song_id == song_id)
                .order_by(*order).first())

    # -- helpers ----------------------------------------------------------------------------------

    def _add_row(self, session, result_model, song_id: int, result: AnalysisResult,
                 user_id: int | None):
        columns = result_model.__table__.columns
        values = dict(legacy_columns(result), song_id=song_id, analyzed_at=_now())
        if user_id is not None:
            values["user_id"] = user_id
        row = result_model(**{name: _fit(columns[name], value)
                              for name, value in values.items() if name in columns})
        session.add(row)
        return row

    def _tables(self):
        session, song_model, result_model = self._session, self._song_model, self._result_model
        if session is None or result_model is None:
            found_session, found_result = _flask_sqlalchemy_tables()
            session = session or found_session
            result_model = result_model or found_result
        if song_model is None:
            song_model = _referenced_model(result_model)
        return session, song_model, result_model


def _song_input(song, user_id: int | None) -> dict:
    title = getattr(song, "title", None) or getattr(song, "name", None) or ""
    return {"title": title, "artist": song.artist or "", "lyrics": song.lyrics or "",
            "user_id": user_id}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _fit(column, value):
    """`value` in the form `column` stores: JSON text in a text column, naive UTC in a column
    without time zone."""
    from sqlalchemy import JSON, DateTime

    if isinstance(value, (list, dict)) and not isinstance(column.type, JSON):
        return json.dumps(value)
    if isinstance(value, datetime) and isinstance(column.type, DateTime):
        return value if column.type.timezone else value.replace(tzinfo=None)
    return value


def _flask_sqlalchemy_tables():
    """The current Flask app's session and the class mapped to `analysis_results`."""
    from flask import current_app, has_app_context

    db = current_app.extensions.get("sqlalchemy") if has_app_context() else None
    if db is None:
        raise HostTablesNotFound(
            "storing needs a Flask app context with Flask-SQLAlchemy, or pass session=, "
            "result_model= (and song_model=) to SimplifiedChristianAnalysisService"
        )
    for mapper in db.Model.registry.mappers:
        if getattr(mapper.local_table, "name", None) == RESULTS_TABLE:
            return db.session, mapper.class_
    raise HostTablesNotFound(f"no model is mapped to the table {RESULTS_TABLE!r}; pass "
                             "result_model= to SimplifiedChristianAnalysisService")


def _referenced_model(result_model):
    """The mapped class of the table that `result_model.song_id` references."""
    column = result_model.__table__.columns.get("song_id")
    targets = [fk.column.table for fk in column.foreign_keys] if column is not None else []
    for mapper in result_model.registry.mappers if targets else ():
        if mapper.local_table is targets[0]:
            return mapper.class_
    raise HostTablesNotFound(f"{result_model.__name__}.song_id references no mapped song table; "
                             "pass song_model= to SimplifiedChristianAnalysisService")
