"""The model store: loads the analyzer once, serves it, and swaps in a new one atomically.

A reload builds the new analyzer beside the old one, validates it with a smoke prediction and only
then swaps the reference; requests already holding the old analyzer finish on it. A broken
checkpoint is refused with its reason logged, and the old analyzer keeps serving.

Three things trigger a reload: `POST /api/admin/model/reload`, SIGHUP to a serving process
(`install_sighup_reload`) and the `ModelWatcher`, which polls the backend's `fingerprint` (for
gptoss: name, size and mtime of every file in the checkpoint folder) and reloads when it changes.

A store is the only thing that loads a model: `BaseAnalyzer.get_instance` goes through one too
(`store_for`), sharing the process-wide store when it asks for the same settings.
"""

import logging
import signal
import threading
import time
from typing import Any, Mapping

from selah.analyzers.base import Analyzer, AnalyzerUnavailable, BaseAnalyzer

log = logging.getLogger(__name__)

# A song written for this project, used to check that a freshly loaded model answers.
SMOKE_SONG = {
    "title": "Morning Light (smoke test)",
    "artist": "Selah",
    "lyrics": "When the morning breaks I lift my eyes\nYour mercy new with every sunrise\n"
    "I will trust You in the valley and the height",
}


class ModelStore:
    """Holds one analyzer for a process (or one app) and its load state."""

    def __init__(self, backend_cls: type[BaseAnalyzer], config: Mapping[str, Any]):
        self.backend_cls = backend_cls
        self.config = dict(config)
        self.status = "not_initialized"  # not_initialized | loading | ready | failed
        self.error: str | None = None
        self.loaded_at: float | None = None
        self._analyzer: Analyzer | None = None
        self._lock = threading.Lock()
        # The backend fingerprint of what the last load attempt read (success or not).
        self._fingerprint: str | None = None

    def preflight(self) -> tuple[bool, str]:
        """`(ok, message)` from the backend, loading no weights."""
        return self.backend_cls.preflight_config(self.config)

    def get(self) -> Analyzer:
        """The serving analyzer; loads it on first use; raises `AnalyzerUnavailable`."""
        analyzer = self._analyzer
        if analyzer is not None:
            return analyzer
        with self._lock:
            if self._analyzer is None and self.status in ("not_initialized", "loading"):
                self._load_locked()
            if self._analyzer is None:
                raise AnalyzerUnavailable(self.error or "analyzer not loaded")
            return self._analyzer

    def load_in_background(self) -> threading.Thread:
        """Start loading in a daemon thread (start-up must not wait for weights)."""
        self.status = "loading"
        thread = threading.Thread(target=self._background_load, name="model-load", daemon=True)
        thread.start()
        return thread

    def _background_load(self) -> None:
        try:
            self.get()
        except AnalyzerUnavailable:
            pass  # already logged and recorded in self.error

    def reload(self) -> tuple[bool, str]:
        """Load a new analyzer beside the current one and swap it in if it validates."""
        with self._lock:
            previous = self._analyzer
            ok, message = self._load_locked()
            if not ok and previous is not None:
                # The old model keeps serving; the store stays ready.
                self._analyzer, self.status = previous, "ready"
            return ok, message

    def reload_if_changed(self) -> tuple[bool, str] | None:
        """Reload when the model on disk changed since the last load attempt; None when it has
        not, or when nothing was loaded yet (the first use loads it)."""
        if self.status in ("not_initialized", "loading"):
            return None
        current = self.backend_cls.fingerprint(self.config)
        if current is None or current == self._fingerprint:
            return None
        log.info("analyzer %s: the model on disk changed; reloading", self.backend_cls.backend)
        return self.reload()

    def clear(self) -> None:
        """Forget the analyzer; the next `get` loads again."""
        with self._lock:
            self._analyzer, self.status, self.error = None, "not_initialized", None

    def _load_locked(self) -> tuple[bool, str]:
        self.status = "loading" if self._analyzer is None else self.status
        started = time.perf_counter()
        # Taken before loading: a change made during the load shows up at the next check.
        try:
            self._fingerprint = self.backend_cls.fingerprint(self.config)
        except OSError:
            self._fingerprint = None
        try:
            candidate = self.backend_cls.from_config(self.config)
            smoke = candidate.analyze_song(**SMOKE_SONG)
            if not smoke.is_successful():
                raise AnalyzerUnavailable(f"smoke prediction failed: {smoke.error_message}")
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, not raised
            self.error = str(exc) if isinstance(exc, AnalyzerUnavailable) else repr(exc)
            if self._analyzer is None:
                self.status = "failed"
            log.error("analyzer %s not loaded: %s", self.backend_cls.backend, self.error)
            return False, self.error
        self._analyzer, self.status, self.error = candidate, "ready", None
        self.loaded_at = time.time()
        seconds = time.perf_counter() - started
        log.info("analyzer %s ready: %s (%.2fs)", candidate.backend, candidate.model_version,
                 seconds)
        return True, f"loaded {candidate.model_version}"

    @property
    def loaded(self) -> Analyzer | None:
        """The serving analyzer if one is loaded, else None (never loads)."""
        return self._analyzer

    @property
    def model_version(self) -> str | None:
        """Version of the serving model, or None when none is loaded."""
        return self._analyzer.model_version if self._analyzer is not None else None

    @property
    def runtime(self) -> str | None:
        """The runtime the serving model runs on (`selah.runtime`; the gptoss backend's), or
        None when none is loaded or its backend has no such choice."""
        analyzer = self._analyzer
        return analyzer.info().get("runtime") if analyzer is not None else None

    def info(self) -> dict:
        """The legacy `get_analyzer_info()` shape plus this store's state."""
        info = self._analyzer.info() if self._analyzer is not None else {}
        models = info.get("models", [])
        return {
            "status": self.status,
            "models": models,
            "model_count": len(models),
            "analyzer_type": self.backend_cls.__name__,
            "backend": self.backend_cls.backend,
            "model_version": self.model_version,
            "runtime": info.get("runtime"),
            "error": self.error,
        }


class ModelWatcher:
    """A daemon thread that calls `store.reload_if_changed()` every `interval` seconds."""

    def __init__(self, store: ModelStore, interval: float):
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "ModelWatcher":
        """Start watching (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="model-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and wait for the thread (a reload in progress finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.store.reload_if_changed()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one bad check
                log.exception("model watcher: checking for a new model failed")


def install_sighup_reload(store: ModelStore) -> bool:
    """Make SIGHUP reload the model in this process (in a thread: the handler returns at once).

    Only the main thread may set signal handlers; elsewhere, or without SIGHUP (Windows), nothing
    is installed and False is returned. Under gunicorn this runs in each worker, whose own SIGHUP
    would otherwise terminate it: `kill -HUP <worker>` hot-swaps that worker's model, while
    `kill -HUP <master>` keeps gunicorn's meaning (new workers, which load the model afresh,
    replace the old ones once their requests finish).
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return False

    def reload_in_background(_signum, _frame) -> None:
        threading.Thread(target=_logged_reload, args=(store,), name="model-reload-sighup",
                         daemon=True).start()

    signal.signal(signal.SIGHUP, reload_in_background)
    return True


def _logged_reload(store: ModelStore) -> None:
    ok, message = store.reload()
    log.log(logging.INFO if ok else logging.ERROR, "SIGHUP reload: %s", message)


_process_store: ModelStore | None = None
_process_lock = threading.Lock()


def environment_config() -> dict[str, Any]:
    """The analyzer's settings as the environment gives them now (`selah.settings`)."""
    from selah.settings import analyzer_settings

    return analyzer_settings()


def process_store() -> ModelStore:
    """The process-wide store: the backend and settings the environment names, made once."""
    global _process_store
    with _process_lock:
        if _process_store is None:
            from selah.analyzers import backend_class

            config = environment_config()
            _process_store = ModelStore(backend_class(config["ANALYZER_BACKEND"]), config)
        return _process_store


def current_store() -> ModelStore:
    """The store of the current Selah app, else the process-wide one: outside any app context,
    and inside a foreign Flask app (the web app's), which has no Selah store."""
    from flask import current_app, has_app_context

    if has_app_context():
        store = current_app.extensions.get("selah.model_store")
        if store is not None:
            return store
    return process_store()


def store_for(
    backend_cls: type[BaseAnalyzer], config: Mapping[str, Any] | None = None
) -> ModelStore:
    """A store serving `backend_cls` (what `BaseAnalyzer.get_instance` loads through).

    With `config` None: the process-wide store when the environment selects this backend (so
    the same settings never load a second model), else a new store of the environment's
    settings. With a `config`: a new store of it.
    """
    if config is None:
        from selah.analyzers import BACKENDS

        config = environment_config()
        if BACKENDS.get(config["ANALYZER_BACKEND"]) is backend_cls:
            return process_store()
    return ModelStore(backend_cls, config)
