"""Every setting of the service, read from the environment with a typed parse and a default.

Each variable here is listed in `.env.example` and in the README's table; code reads
`current_app.config[...]`, never the environment. Tests subclass `Config`. The typed readers
(`env_str`, `env_int`, ...) and the analyzer's settings live in `selah.settings`.
"""

from selah.settings import analyzer_settings, env_bool, env_float, env_int, env_str


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

    # The analyzer: the service's own settings here; the backends' (ANALYZER_BACKEND, GPTOSS_*,
    # HF_*, LLM_*, ANALYSIS_MAX_CONCURRENCY) come from selah.settings, set below the class.
    ANALYZER_LOAD_ON_START = env_bool("ANALYZER_LOAD_ON_START", True)
    # Reload the model when the checkpoint folder's files change, checked this often; 0 disables.
    MODEL_WATCH_SECONDS = env_float("MODEL_WATCH_SECONDS", 10.0, minimum=0.0)
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
    # Inline analyses run on the request thread: one batch may carry at most this many characters
    # of lyrics (bigger ones go to a job: store them as a playlist and analyse that), and an
    # inline analysis stops with a 503 once it has run this many seconds (0: no limit).
    INLINE_MAX_CHARS = env_int("INLINE_MAX_CHARS", 200_000, minimum=1)
    REQUEST_TIMEOUT_SECONDS = env_float("REQUEST_TIMEOUT_SECONDS", 60.0, minimum=0.0)

    LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()

    # OpenAPI document (flask-smorest).
    API_TITLE = "Selah"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "openapi.json"


# The backends' settings, read by the same code that `selah.compat` uses inside a web app.
for _name, _value in analyzer_settings().items():
    setattr(Config, _name, _value)
