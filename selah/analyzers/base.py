"""The analyzer interface the web app calls: `AnalysisResult` and the `Analyzer` protocol.

Kept from the legacy 4-model service (see `shared/spec/contract.md`, sections 1-2): every name,
method and hard-indexed key. `BaseAnalyzer` holds what all backends share: the no-lyrics rule,
input coercion, the never-raise guarantee and the per-class singleton (loaded by a `ModelStore`).
"""

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:
    from selah.analyzers.store import ModelStore

# Titles that mark a song without lyrics as instrumental (contract section 1).
INSTRUMENTAL_WORDS = (
    "instrumental", "interlude", "intro", "outro", "bridge", "prelude", "postlude",
    "overture", "theme", "score", "ambient", "meditation", "prayer music",
)
# Lyrics of this many characters or fewer are not sent to a model.
MIN_LYRICS_CHARS = 10
ANALYSIS_VERSION = "selah-1"


class AnalyzerUnavailable(RuntimeError):
    """The configured backend cannot load; the message says what is missing."""


class AnalyzerRateLimited(RuntimeError):
    """The one exception callers tolerate: try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


def quality_level(score: float) -> str:
    """Legacy quality level (a level of concern) for a 0-100 score."""
    if score >= 85:
        return "Very Low"
    if score >= 70:
        return "Low"
    if score >= 50:
        return "Medium"
    return "High"


def concern_level(score: float) -> str:
    """Lowercase concern level stored in `analysis_results.concern_level`."""
    return quality_level(score).lower().replace(" ", "_")


def recommendation(score: float) -> str:
    """Legacy recommendation sentence for a 0-100 score."""
    if score >= 85:
        return "Highly recommended for Christian audiences"
    if score >= 70:
        return "Generally appropriate for Christian audiences"
    if score >= 50:
        return "Review recommended - some concerns may apply"
    return "Not recommended for Christian audiences"


@dataclass
class AnalysisResult:
    """One song's analysis, in the legacy shape plus `to_dict()`."""

    title: str
    artist: str
    lyrics_text: str
    processed_text: str = ""
    content_analysis: dict = field(default_factory=dict)
    biblical_analysis: dict = field(default_factory=dict)
    model_analysis: dict = field(default_factory=dict)
    scoring_results: dict = field(default_factory=dict)
    processing_time: float = 0.0
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    user_id: int | None = None
    analysis_version: str = ANALYSIS_VERSION
    error_message: str | None = None
    configuration_snapshot: dict = field(default_factory=dict)

    @classmethod
    def create_error(
        cls,
        title: str,
        artist: str,
        lyrics_text: str,
        error_message: str,
        user_id: int | None = None,
        processing_time: float = 0.0,
        configuration_snapshot: dict | None = None,
    ) -> "AnalysisResult":
        """A complete failed result: score 0, every hard-indexed key present."""
        return cls._empty(
            title, artist, lyrics_text,
            score=0.0, explanation=f"Analysis failed: {error_message}", level="Unknown",
            processing_time=processing_time, user_id=user_id, error_message=error_message,
            configuration_snapshot=dict(configuration_snapshot or {}),
        )

    @classmethod
    def _empty(
        cls,
        title: str,
        artist: str,
        lyrics_text: str,
        *,
        score: float,
        explanation: str,
        level: str,
        summary: str = "",
        processing_time: float = 0.0,
        user_id: int | None = None,
        error_message: str | None = None,
        configuration_snapshot: dict | None = None,
    ) -> "AnalysisResult":
        # What no model produced (an error, the no-lyrics rule) still has every key callers read.
        return cls(
            title=title,
            artist=artist,
            lyrics_text=lyrics_text,
            processed_text="",
            content_analysis={
                "concern_flags": [],
                "safety_assessment": {},
                "total_penalty": 0,
                "concern_level": "unknown",
            },
            biblical_analysis={"themes": [], "supporting_scripture": [],
                               "biblical_themes_count": 0},
            model_analysis={},
            scoring_results={
                "final_score": score,
                "explanation": explanation,
                "quality_level": level,
                "component_scores": {},
                "verdict_summary": summary,
                "formation_guidance": "",
                "theological_weighting": 0.0,
                "formational_penalty": 0.0,
            },
            processing_time=processing_time,
            user_id=user_id,
            error_message=error_message,
            configuration_snapshot=configuration_snapshot or {},
        )

    @classmethod
    def from_dict(cls, data: dict) -> "AnalysisResult":
        """Rebuild a result from `to_dict()` output (keys it does not know are ignored)."""
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        if isinstance(values.get("timestamp"), str):
            values["timestamp"] = datetime.fromisoformat(values["timestamp"])
        return cls(**values)

    def is_successful(self) -> bool:
        """True when the analysis ran without error."""
        return self.error_message is None

    def get_final_score(self) -> float:
        """The 0-100 score (0 for a failed analysis)."""
        return float(self.scoring_results.get("final_score", 0.0))

    def get_quality_level(self) -> str:
        """The legacy quality level, or one derived from the score."""
        return self.scoring_results.get("quality_level") or quality_level(self.get_final_score())

    def get_content_flags(self) -> list[dict]:
        """The concern flags found in the lyrics."""
        return list(self.content_analysis.get("concern_flags", []))

    def get_biblical_themes(self) -> list[dict]:
        """The biblical themes found in the lyrics."""
        return list(self.biblical_analysis.get("themes", []))

    def get_component_scores(self) -> dict:
        """The components the final score was built from."""
        return dict(self.scoring_results.get("component_scores", {}))

    def get_recommendation(self) -> str:
        """The legacy recommendation sentence for this score."""
        return recommendation(self.get_final_score())

    def get_summary(self) -> dict:
        """A short summary: score, level, recommendation, counts."""
        return {
            "title": self.title,
            "artist": self.artist,
            "final_score": self.get_final_score(),
            "quality_level": self.get_quality_level(),
            "recommendation": self.get_recommendation(),
            "biblical_themes_count": len(self.get_biblical_themes()),
            "content_flags_count": len(self.get_content_flags()),
            "processing_time": self.processing_time,
            "successful": self.is_successful(),
        }

    def to_dict(self) -> dict:
        """The JSON form every route returns (timestamp as ISO 8601 with its zone): a copy of
        every field, nested dicts and lists copied too (what `dataclasses.asdict` gives, without
        its deep copy of every leaf: a result's leaves are strings and numbers)."""
        data = {name: _copied(getattr(self, name)) for name in self.__dataclass_fields__}
        data["timestamp"] = self.timestamp.isoformat()
        data["recommendation"] = self.get_recommendation()
        return data


def _copied(value):
    """`value` with its dicts, lists and tuples copied, at every depth."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(item) for item in value)
    return value


def no_lyrics_result(title: str, artist: str, lyrics: str, user_id: int | None) -> AnalysisResult:
    """The rule for songs whose lyrics are too short to analyse (never sent to a model)."""
    lowered = title.lower()
    instrumental = any(word in lowered for word in INSTRUMENTAL_WORDS)
    score, level = (75.0, "Instrumental") if instrumental else (50.0, "No Lyrics Available")
    reason = (
        "Instrumental track: no lyrics to analyse"
        if instrumental
        else "No lyrics available: the song was not analysed"
    )
    return AnalysisResult._empty(
        title, artist, lyrics, score=score, explanation=reason, level=level, summary=reason,
        user_id=user_id, configuration_snapshot={"rule": "no_lyrics"},
    )


@runtime_checkable
class Analyzer(Protocol):
    """What the service needs from a backend."""

    backend: ClassVar[str]
    model_version: str

    def analyze_song(
        self, title: str, artist: str, lyrics: str, user_id: int | None = None
    ) -> AnalysisResult: ...

    def analyze_songs_batch(self, songs: list[dict]) -> list[AnalysisResult]: ...

    def info(self) -> dict: ...


class BaseAnalyzer:
    """Shared behaviour of every backend; subclasses implement `_analyze_batch`.

    `_analyze_batch(items)` gets a list of `(title, artist, lyrics, user_id)` with real lyrics and
    returns one `AnalysisResult` per item; it may raise, and the whole batch then becomes error
    results. Subclasses also set `backend`, `model_version` and implement `from_config` and
    `preflight_config`.
    """

    backend: ClassVar[str] = "base"
    model_version: str = "unknown"
    # The store `get_instance` loads through, per class (read from the class's own __dict__).
    _store: ClassVar["ModelStore | None"] = None
    _store_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "BaseAnalyzer":
        """Build the analyzer from service settings; raise `AnalyzerUnavailable` when it can't."""
        raise NotImplementedError

    @classmethod
    def preflight_config(cls, config: Mapping[str, Any]) -> tuple[bool, str]:
        """Check, without loading weights, that `from_config` can succeed."""
        raise NotImplementedError

    @classmethod
    def fingerprint(cls, config: Mapping[str, Any]) -> str | None:
        """A cheap token that changes when the model on disk changes (None: nothing to watch)."""
        return None

    @classmethod
    def get_instance(cls, config: Mapping[str, Any] | None = None) -> "BaseAnalyzer":
        """The process-wide instance of this backend, loaded on first use by a `ModelStore`.

        With `config` None the settings are the environment's, and when the environment selects
        this backend the instance is the process-wide store's (the one the legacy helpers serve
        outside an app context), so those settings load one model, not two. Otherwise this class
        gets a store of its own. Later calls return the same instance, whatever `config` they
        pass, until `reset_cache`. A failed load raises `AnalyzerUnavailable` saying why, and the
        next call tries again.
        """
        from selah.analyzers.store import store_for  # model_store imports this module

        with cls._store_lock:
            store = cls.__dict__.get("_store")
            if store is None:
                store = cls._store = store_for(cls, config)
        try:
            return store.get()
        except AnalyzerUnavailable:
            # As before the stores: a failed load is not cached, the next call builds afresh.
            with cls._store_lock:
                if cls.__dict__.get("_store") is store:
                    cls._store = None
            store.clear()
            raise

    @classmethod
    def reset_cache(cls) -> None:
        """Forget the instance and clear the store it came from; the next `get_instance` loads
        a new one."""
        with cls._store_lock:
            store, cls._store = cls.__dict__.get("_store"), None
        if store is not None:
            store.clear()

    def info(self) -> dict:
        """Backend name, model version and the models it runs."""
        return {"backend": self.backend, "model_version": self.model_version, "models": []}

    def analyze_song(
        self, title: str, artist: str, lyrics: str, user_id: int | None = None
    ) -> AnalysisResult:
        """Analyse one song; never raises except `AnalyzerRateLimited`."""
        song = {"title": title, "artist": artist, "lyrics": lyrics, "user_id": user_id}
        return self.analyze_songs_batch([song])[0]

    def analyze_songs_batch(self, songs: list[dict]) -> list[AnalysisResult]:
        """Analyse many songs, same order and length; never raises except `AnalyzerRateLimited`."""
        results: list[AnalysisResult | None] = [None] * len(songs)
        pending: list[int] = []
        items: list[tuple[str, str, str, int | None]] = []
        for index, song in enumerate(songs):
            try:
                title = str(song.get("title") or "")
                artist = str(song.get("artist") or "")
                lyrics = song.get("lyrics") or ""
                if not isinstance(lyrics, str):
                    raise TypeError(f"lyrics must be a string, not {type(lyrics).__name__}")
                user_id = song.get("user_id")
            except (AttributeError, TypeError) as exc:
                results[index] = AnalysisResult.create_error("", "", "", f"invalid song: {exc}")
                continue
            if len(lyrics.strip()) <= MIN_LYRICS_CHARS:
                results[index] = no_lyrics_result(title, artist, lyrics, user_id)
            else:
                pending.append(index)
                items.append((title, artist, lyrics, user_id))
        if items:
            started = time.perf_counter()
            try:
                predicted = self._analyze_batch(items)
                if len(predicted) != len(items):
                    raise RuntimeError(
                        f"backend returned {len(predicted)} results for {len(items)}")
            except AnalyzerRateLimited:
                raise
            except Exception as exc:  # noqa: BLE001 - the contract: never raise, report instead
                elapsed = (time.perf_counter() - started) / len(items)
                message = f"{type(exc).__name__}: {exc}"
                predicted = [
                    AnalysisResult.create_error(t, a, lyr, message, u, elapsed, self.snapshot())
                    for t, a, lyr, u in items
                ]
            for index, result in zip(pending, predicted):
                results[index] = result
        return results  # type: ignore[return-value]

    def snapshot(self) -> dict:
        """The configuration snapshot stored with every result."""
        return {"backend": self.backend, "model_version": self.model_version}

    def _analyze_batch(self, items: list[tuple[str, str, str, int | None]]) -> list[AnalysisResult]:
        raise NotImplementedError
