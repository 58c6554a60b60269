"""gunicorn settings (`gunicorn -c gunicorn.conf.py wsgi:app`), read from the environment.

One worker process by default: each process holds its own copy of the model, so scale with
threads (requests mostly wait on the model or the database) before adding processes.
"""

from dotenv import load_dotenv

# Like the `flask` command, read `.env` from the repository root; real environment variables win.
# First, so that the app's settings (read when `app.config` is imported) see it too.
load_dotenv()

from app.config import env_int, env_str  # noqa: E402 - after load_dotenv on purpose

# Loopback by default: a local `make serve` is not reachable from other machines. The container
# sets HOST=0.0.0.0 (its Dockerfile), where the port mapping decides who reaches it.
bind = f"{env_str('HOST', '127.0.0.1')}:{env_int('PORT', 5000, minimum=1)}"
workers = env_int("WEB_CONCURRENCY", 1, minimum=1)
threads = env_int("GUNICORN_THREADS", 4, minimum=1)
# Long enough for a cold model load or a slow batch request; a stuck worker is still replaced.
timeout = 120
graceful_timeout = 30
# Seconds an idle keep-alive connection stays open. Longer than a client's usual pause between
# calls: a client that sends on a connection just as the server closes it sees a dropped request
# (the load test's users pause 0.5-2 s; at gunicorn's default of 2 s one request in 5,000 was lost
# that way).
keepalive = 5
# No control socket (gunicorn 25.1+): its default path is one per user, which a second server on
# the machine (a test run beside `make serve`) would take over.
control_socket_disable = True

# Everything on stdout. The root logger is left to the app, which adds its own stdout handler.
logconfig_dict = {
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False,
                           "qualname": "gunicorn.error"},
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False,
                            "qualname": "gunicorn.access"},
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "formatter": "generic",
                   "stream": "ext://sys.stdout"},
        # Access lines carry their own timestamp.
        "access": {"class": "logging.StreamHandler", "formatter": "access",
                   "stream": "ext://sys.stdout"},
    },
    "formatters": {
        "generic": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
                    "datefmt": "[%Y-%m-%d %H:%M:%S %z]", "class": "logging.Formatter"},
        "access": {"format": "%(message)s", "class": "logging.Formatter"},
    },
}
