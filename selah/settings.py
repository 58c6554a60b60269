"""The analyzer's settings, read from the environment with a typed parse and a default.

`analyzer_settings()` is every setting a backend reads (`ANALYZER_BACKEND`, `GPTOSS_*`, `HF_*`,
`LLM_*`, `ANALYSIS_MAX_CONCURRENCY`), read when it is called. The service's `app.config.Config`
takes them from here with its own settings; `selah.compat`, inside a web app that has no Selah
config, reads them from here alone. Each variable is listed in `.env.example` and the README.
"""

import os
from typing import Any


def env_str(name: str, default: str) -> str:
    """The variable `name` as a stripped string, or `default` when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    """The variable `name` as an int in [minimum, maximum]; a bad value fails at start-up."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return value


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    """The variable `name` as a float of at least `minimum`; a bad value fails at start-up."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_bool(name: str, default: bool) -> bool:
    """The variable `name` as a bool (1/true/yes/on or 0/false/no/off)."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be a boolean (true/false), got {raw!r}")


def analyzer_settings() -> dict[str, Any]:
    """Every analyzer setting, read from the environment now; a bad value raises ValueError."""
    return {
        # Which backend serves: gptoss (the distilled student), huggingface (the legacy four
        # models) or llm (an OpenAI-compatible server).
        "ANALYZER_BACKEND": env_str("ANALYZER_BACKEND", "gptoss"),
        # The gptoss checkpoint folder; empty: the embedded default (selah/checkpoints/default).
        "GPTOSS_MODEL_PATH": env_str("GPTOSS_MODEL_PATH", ""),
        "GPTOSS_DEVICE": env_str("GPTOSS_DEVICE", "auto"),
        # How its linear layers run (selah.runtime): auto (bf16 on AMX tiles, else int8),
        # int8, int8-compiled, bf16 or float32.
        "GPTOSS_RUNTIME": env_str("GPTOSS_RUNTIME", "auto"),
        # Songs per forward pass of the student.
        "GPTOSS_BATCH_SIZE": env_int("GPTOSS_BATCH_SIZE", 64, minimum=1, maximum=1024),
        # Evidence in every result: the lyric lines behind each theme and concern, and the
        # scripture the lyric quotes (selah.evidence, selah.quotes).
        "GPTOSS_EVIDENCE": env_bool("GPTOSS_EVIDENCE", True),
        # The legacy 4-model backend (`huggingface`): a hub id or local folder per model.
        "HF_SENTIMENT_MODEL": env_str("HF_SENTIMENT_MODEL",
                                      "cardiffnlp/twitter-roberta-base-sentiment-latest"),
        "HF_SAFETY_MODEL": env_str("HF_SAFETY_MODEL", "unitary/toxic-bert"),
        "HF_EMOTION_MODEL": env_str("HF_EMOTION_MODEL",
                                    "j-hartmann/emotion-english-distilroberta-base"),
        "HF_THEMES_MODEL": env_str("HF_THEMES_MODEL", "facebook/bart-large-mnli"),
        "HF_DEVICE": env_str("HF_DEVICE", "auto"),
        # Analyses the legacy backend runs at once (its semaphore).
        "ANALYSIS_MAX_CONCURRENCY": env_int("ANALYSIS_MAX_CONCURRENCY", 2, minimum=1),
        # The OpenAI-compatible LLM backend (`llm`): Ollama, vLLM, llama.cpp's server, ...
        "LLM_API_BASE_URL": env_str("LLM_API_BASE_URL", ""),
        "LLM_MODEL": env_str("LLM_MODEL", ""),
        "LLM_API_KEY": env_str("LLM_API_KEY", ""),
        "LLM_TEMPERATURE": env_float("LLM_TEMPERATURE", 0.3, minimum=0.0),
        "LLM_TOP_P": env_float("LLM_TOP_P", 0.9, minimum=0.0),
        "LLM_MAX_TOKENS": env_int("LLM_MAX_TOKENS", 900, minimum=1),
        # Longer lyrics are split into chunks of at most this many characters, results merged.
        "LLM_CHUNK_CHAR_LIMIT": env_int("LLM_CHUNK_CHAR_LIMIT", 3500, minimum=100),
        "LLM_TIMEOUT_SECONDS": env_float("LLM_TIMEOUT_SECONDS", 120.0, minimum=0.1),
        # Retries of a request that timed out, failed to connect or got a 5xx, with backoff.
        "LLM_MAX_RETRIES": env_int("LLM_MAX_RETRIES", 2, minimum=0),
        # Requests in flight to the server at once, per process.
        "LLM_MAX_CONCURRENCY": env_int("LLM_MAX_CONCURRENCY", 4, minimum=1),
    }
