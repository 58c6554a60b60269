"""Analyzer backends, chosen by name from one literal dict, and the legacy singleton helpers.

The helpers (`get_shared_analyzer`, `is_analyzer_ready`, ...) are the functions the web app
imported from the legacy service. Inside a request or app context they act on that app's
`ModelStore`; outside one, on a process-wide store configured from the environment.
"""

from typing import Any, Mapping

from selah.analyzers.base import (
    AnalysisResult,
    Analyzer,
    AnalyzerRateLimited,
    AnalyzerUnavailable,
    BaseAnalyzer,
)
from selah.analyzers.gptoss import GPTOSSChristianAnalyzer
from selah.analyzers.huggingface import HuggingFaceAnalyzer
from selah.analyzers.llm import LLMAnalyzer

BACKENDS: dict[str, type[BaseAnalyzer]] = {
    "gptoss": GPTOSSChristianAnalyzer,
    "huggingface": HuggingFaceAnalyzer,
    "llm": LLMAnalyzer,
}

__all__ = [
    "BACKENDS", "AnalysisResult", "Analyzer", "AnalyzerRateLimited", "AnalyzerUnavailable",
    "BaseAnalyzer", "GPTOSSChristianAnalyzer", "HuggingFaceAnalyzer", "LLMAnalyzer",
    "backend_class", "clear_analyzer_cache", "get_analyzer_info", "get_shared_analyzer",
    "initialize_analyzer", "is_analyzer_ready", "preflight",
]


def backend_class(name: str) -> type[BaseAnalyzer]:
    """The backend class registered under `name`; unknown names list the valid ones."""
    try:
        return BACKENDS[name]
    except KeyError:
        valid = ", ".join(sorted(BACKENDS))
        raise ValueError(f"unknown ANALYZER_BACKEND {name!r}; valid backends: {valid}") from None


def _store():
    from selah.analyzers.store import current_store

    return current_store()


def get_shared_analyzer() -> Analyzer:
    """The loaded analyzer, loading it first if needed; raises `AnalyzerUnavailable`."""
    return _store().get()


def is_analyzer_ready() -> bool:
    """True when an analyzer is loaded and serving."""
    return _store().status == "ready"


def get_analyzer_info() -> dict:
    """`{status: ready|loading|not_initialized|failed, models, model_count, analyzer_type, ...}`."""
    return _store().info()


def clear_analyzer_cache() -> None:
    """Drop the loaded analyzer; the next use loads it again."""
    _store().clear()


def initialize_analyzer() -> Analyzer:
    """Load the analyzer now (same as `get_shared_analyzer`)."""
    return _store().get()


def preflight(config: Mapping[str, Any] | None = None) -> tuple[bool, str]:
    """`(ok, message)`: can the configured backend load? Loads no weights."""
    return _store().preflight() if config is None else _preflight_for(config)


def _preflight_for(config: Mapping[str, Any]) -> tuple[bool, str]:
    try:
        cls = backend_class(config.get("ANALYZER_BACKEND", "gptoss"))
    except ValueError as exc:
        return False, str(exc)
    return cls.preflight_config(config)
