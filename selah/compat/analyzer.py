"""`HuggingFaceAnalyzer` as the web app knows it, serving the configured Selah backend.

The web app constructs `HuggingFaceAnalyzer()` with no arguments, or asks
`HuggingFaceAnalyzer.get_instance()`, and calls `analyze_song` / `analyze_songs_batch`. This class
keeps that name and those calls and serves whatever the environment configures
(`ANALYZER_BACKEND`, default `gptoss`: the distilled student on its embedded checkpoint; see
`selah.settings`). Every instance shares one model: the store of the current Selah app, or the
process-wide store inside any other Flask app or none (`selah.analyzers.store.current_store`).

Not to be confused with `selah.analyzers.HuggingFaceAnalyzer`, Selah's reimplementation of the
legacy four-model analyzer (backend `huggingface`), which this class serves only when
`ANALYZER_BACKEND=huggingface`.
"""

import threading

from selah.analyzers.base import AnalysisResult, Analyzer, AnalyzerUnavailable
from selah.analyzers.store import ModelStore, current_store


def _loaded_model(self) -> Analyzer | None:
    return self._store().loaded


class HuggingFaceAnalyzer:
    """The legacy analyzer's name and calls, serving the configured Selah backend.

    Like the contract's analyzers, `analyze_song` and `analyze_songs_batch` never raise for a
    model, parse or input problem (a model that cannot load gives error results saying why);
    only `AnalyzerRateLimited` passes through. `get_instance()` loads the model at once and
    raises `AnalyzerUnavailable` when it cannot (`ValueError` for a bad setting), as the legacy
    constructor did, so a web app's start-up fallback still sees the failure.
    """

    _instance: "HuggingFaceAnalyzer | None" = None
    _instance_lock = threading.Lock()

    # The four model attributes the web app's own analyzer cache probes (`get_model_info` says
    # "ready" once they are set): all four roles are served by the one Selah model, so each is
    # the loaded analyzer, or None before it loads.
    _sentiment_analyzer = property(_loaded_model)
    _safety_analyzer = property(_loaded_model)
    _emotion_analyzer = property(_loaded_model)
    _theme_analyzer = property(_loaded_model)

    def __init__(self):
        """Nothing loads here: the model loads on the first analysis or `get_instance()`."""

    @staticmethod
    def _store() -> ModelStore:
        return current_store()

    @classmethod
    def get_instance(cls) -> "HuggingFaceAnalyzer":
        """The shared instance, its model loaded; raises `AnalyzerUnavailable` when it cannot."""
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            instance = cls._instance
        instance._store().get()
        return instance

    @classmethod
    def reset_cache(cls) -> None:
        """Forget the shared instance and unload the model; the next use loads it again."""
        with cls._instance_lock:
            cls._instance = None
        current_store().clear()

    @property
    def analyzer(self) -> Analyzer:
        """The Selah analyzer serving this instance (loads it); raises `AnalyzerUnavailable`."""
        return self._store().get()

    @property
    def backend(self) -> str:
        """The serving backend's name (`gptoss`, `huggingface` or `llm`)."""
        return self._store().backend_cls.backend

    @property
    def model_version(self) -> str | None:
        """The serving model's version, or None before it loads."""
        return self._store().model_version

    def info(self) -> dict:
        """`get_analyzer_info()`'s shape for this instance's store."""
        return self._store().info()

    def analyze_song(
        self, title: str, artist: str, lyrics: str, user_id: int | None = None
    ) -> AnalysisResult:
        """Analyse one song with Selah's model (see the class docstring for what it raises)."""
        return self.analyze_songs_batch(
            [{"title": title, "artist": artist, "lyrics": lyrics, "user_id": user_id}]
        )[0]

    def analyze_songs_batch(self, songs: list[dict]) -> list[AnalysisResult]:
        """Analyse many songs, same order and length; `[]` for `[]`."""
        if not songs:
            return []
        try:
            analyzer = self._store().get()
        except (AnalyzerUnavailable, ValueError) as exc:  # ValueError: a bad setting
            return [_unavailable(song, str(exc)) for song in songs]
        return analyzer.analyze_songs_batch(songs)


def _unavailable(song, reason: str) -> AnalysisResult:
    """A complete error result for a song the model could not be loaded to analyse."""
    song = song if isinstance(song, dict) else {}

    def text(key: str) -> str:
        value = song.get(key)
        return value if isinstance(value, str) else ""

    return AnalysisResult.create_error(text("title"), text("artist"), text("lyrics"),
                                       f"analyzer unavailable: {reason}", song.get("user_id"))
