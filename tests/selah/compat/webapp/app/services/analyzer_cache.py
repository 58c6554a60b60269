"""The stand-in web app's analyzer cache: one shared analyzer, its four models probed by name."""

import threading

from app.utils.analysis.huggingface_analyzer import HuggingFaceAnalyzer

_analyzer = None
_lock = threading.Lock()


def get_shared_analyzer():
    global _analyzer
    with _lock:
        if _analyzer is None:
            _analyzer = HuggingFaceAnalyzer.get_instance()
        return _analyzer


def is_analyzer_ready():
    return _analyzer is not None


def get_analyzer_info():
    if _analyzer is None:
        return {"status": "not_initialized", "models": []}
    models = [name.strip("_") for name in ("_sentiment_analyzer", "_safety_analyzer",
                                           "_emotion_analyzer", "_theme_analyzer")
              if getattr(_analyzer, name, None)]
    return {"status": "ready" if models else "loading", "models": models,
            "model_count": len(models), "analyzer_type": type(_analyzer).__name__}


def clear_analyzer_cache():
    global _analyzer
    with _lock:
        _analyzer = None


def initialize_analyzer():
    return get_shared_analyzer()


def preflight():
    return True, "Using local HF analyzer"
