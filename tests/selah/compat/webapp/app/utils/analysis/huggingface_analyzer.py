"""The stand-in web app's own four-model analyzer: it needs the hub, so here it cannot load."""

import threading


class HuggingFaceAnalyzer:
    _instance = None
    _lock = threading.Lock()

    def __init__(self, device=None):
        self._sentiment_analyzer = None
        self._safety_analyzer = None
        self._emotion_analyzer = None
        self._theme_analyzer = None
        raise OSError("We couldn't connect to 'https://huggingface.co' to load "
                      "cardiffnlp/twitter-roberta-base-sentiment-latest")

    @classmethod
    def get_instance(cls):
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @classmethod
    def reset_cache(cls):
        cls._instance = None
