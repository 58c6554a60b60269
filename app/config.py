"""Every setting of the service, read from the environment with a typed parse and a default.

Each variable here is listed in `.env.example` and in the README's table; code reads
`current_app.config[...]`, never these module-level helpers. Tests subclass `Config`.
"""

import os


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


class Config:
    """Service settings. Class attributes are read once, when the class body runs."""

    # Storage. Empty DATABASE_URL means the embedded SQLite file `instance/selah.db`.
    DATABASE_URL = env_str("DATABASE_URL", "")
    SQLALCHEMY_TRACK_MODIFICATIONS = False

    # Background jobs: REDIS_URL switches from in-process worker threads to an RQ queue.
    REDIS_URL = env_str("REDIS_URL", "")
    RQ_QUEUE = env_str("RQ_QUEUE", "selah")
    # auto: rq when REDIS_URL is set, else thread; none: jobs are stored but not run here.
    JOB_RUNNER = env_str("JOB_RUNNER", "auto")
    JOB_WORKER_THREADS = env_int("JOB_WORKER_THREADS", 2, minimum=1)
    JOB_LEASE_SECONDS = env_float("JOB_LEASE_SECONDS", 120.0, minimum=0.1)
    JOB_POLL_SECONDS = env_float("JOB_POLL_SECONDS", 1.0, minimum=0.01)
    JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)

    # The analyzer.
    ANALYZER_BACKEND = env_str("ANALYZER_BACKEND", "gptoss")
    ANALYZER_LOAD_ON_START = env_bool("ANALYZER_LOAD_ON_START", True)
    GPTOSS_MODEL_PATH = env_str("GPTOSS_MODEL_PATH", "")
    GPTOSS_DEVICE = env_str("GPTOSS_DEVICE", "auto")
    # Songs per forward pass of the student.
    GPTOSS_BATCH_SIZE = env_int("GPTOSS_BATCH_SIZE", 16, minimum=1, maximum=1024)
    # Reload the model when the checkpoint folder's files change, checked this often; 0 disables.
    MODEL_WATCH_SECONDS = env_float("MODEL_WATCH_SECONDS", 10.0, minimum=0.0)

    # The legacy 4-model backend (`huggingface`): a hub id or local folder per model.
    HF_SENTIMENT_MODEL = env_str("HF_SENTIMENT_MODEL",
                                 "cardiffnlp/twitter-roberta-base-sentiment-latest")
    HF_SAFETY_MODEL = env_str("HF_SAFETY_MODEL", "unitary/toxic-bert")
    HF_EMOTION_MODEL = env_str("HF_EMOTION_MODEL", "j-hartmann/emotion-english-distilroberta-base")
    HF_THEMES_MODEL = env_str("HF_THEMES_MODEL", "facebook/bart-large-mnli")
    HF_DEVICE = env_str("HF_DEVICE", "auto")
    # Analyses the legacy backend runs at once (its semaphore).
    ANALYSIS_MAX_CONCURRENCY = env_int("ANALYSIS_MAX_CONCURRENCY", 2, minimum=1)

    # The OpenAI-compatible LLM backend (`llm`): Ollama, vLLM, llama.cpp's server, ...
    LLM_API_BASE_URL = env_str("LLM_API_BASE_URL", "")
    LLM_MODEL = env_str("LLM_MODEL", "")
    LLM_API_KEY = env_str("LLM_API_KEY", "")
    LLM_TEMPERATURE = env_float("LLM_TEMPERATURE", 0.3, minimum=0.0)
    LLM_TOP_P = env_float("LLM_TOP_P", 0.9, minimum=0.0)
    LLM_MAX_TOKENS = env_int("LLM_MAX_TOKENS", 900, minimum=1)
    # Longer lyrics are split into chunks of at most this many characters and the results merged.
    LLM_CHUNK_CHAR_LIMIT = env_int("LLM_CHUNK_CHAR_LIMIT", 3500, minimum=100)
    LLM_TIMEOUT_SECONDS = env_float("LLM_TIMEOUT_SECONDS", 120.0, minimum=0.1)
    # Retries of a request that timed out, failed to connect or got a 5xx, with backoff.
    LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 2, minimum=0)
    # Requests in flight to the server at once, per process.
    LLM_MAX_CONCURRENCY = env_int("LLM_MAX_CONCURRENCY", 4, minimum=1)
    # Tests put a backend class here (not settable from the environment); it wins over
    # ANALYZER_BACKEND.
    ANALYZER_CLASS = None

    # Inline analyses (POST /api/analyze) remembered in memory, per model version; 0 disables.
    RESULT_CACHE_SIZE = env_int("RESULT_CACHE_SIZE", 4096, minimum=0)

    # Admin routes are refused while this is empty.
    ADMIN_TOKEN = env_str("ADMIN_TOKEN", "")

    # Input limits. Titles and artists are stored in 300-character columns.
    MAX_TITLE_LENGTH = env_int("MAX_TITLE_LENGTH", 300, minimum=1, maximum=300)
    MAX_ARTIST_LENGTH = env_int("MAX_ARTIST_LENGTH", 300, minimum=1, maximum=300)
    MAX_LYRICS_LENGTH = env_int("MAX_LYRICS_LENGTH", 20_000, minimum=1)
    MAX_BATCH_SIZE = env_int("MAX_BATCH_SIZE", 500, minimum=1)
    MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 2 * 1024 * 1024, minimum=1024)

    LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()

    # OpenAPI document (flask-smorest).
    API_TITLE = "Selah"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "openapi.json"
