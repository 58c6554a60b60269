"""Settings: typed parsing of environment variables, and the defaults of `Config`."""

import importlib.util

import pytest

from app import config as config_module
from app.config import env_bool, env_float, env_int, env_str

# Config's defaults, spelled out: a changed default is a deliberate, reviewed change.
DEFAULTS = {
    "DATABASE_URL": "",
    "REDIS_URL": "",
    "RQ_QUEUE": "selah",
    "JOB_RUNNER": "auto",
    "JOB_WORKER_THREADS": 2,
    "JOB_LEASE_SECONDS": 120.0,
    "JOB_POLL_SECONDS": 1.0,
    "JOB_MAX_ATTEMPTS": 3,
    "ANALYZER_BACKEND": "gptoss",
    "ANALYZER_LOAD_ON_START": True,
    "GPTOSS_MODEL_PATH": "",
    "GPTOSS_DEVICE": "auto",
    "GPTOSS_RUNTIME": "auto",
    "GPTOSS_BATCH_SIZE": 64,
    "GPTOSS_EVIDENCE": True,
    "MODEL_WATCH_SECONDS": 10.0,
    "RESULT_CACHE_SIZE": 4096,
    "ADMIN_TOKEN": "",
    "MAX_TITLE_LENGTH": 300,
    "MAX_ARTIST_LENGTH": 300,
    "MAX_LYRICS_LENGTH": 20_000,
    "MAX_BATCH_SIZE": 500,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    "LOG_LEVEL": "INFO",
}


def fresh_config(monkeypatch, **env):
    """`Config` as a new process would build it with exactly `env` set among its variables.

    The module is executed anew under another name, so the imported `Config` stays untouched.
    """
    for name in DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("selah_config_under_test", config_module.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Config


def test_defaults(monkeypatch):
    """With nothing set, every setting has its documented default and type."""
    config = fresh_config(monkeypatch)
    for name, default in DEFAULTS.items():
        value = getattr(config, name)
        assert value == default and type(value) is type(default), name


def test_environment_overrides(monkeypatch):
    """Set variables are parsed to the setting's type."""
    config = fresh_config(
        monkeypatch,
        DATABASE_URL=" postgresql://db/selah ",
        JOB_WORKER_THREADS="5",
        JOB_LEASE_SECONDS="7.5",
        ANALYZER_LOAD_ON_START="off",
        LOG_LEVEL="debug",
    )
    assert config.DATABASE_URL == "postgresql://db/selah"
    assert config.JOB_WORKER_THREADS == 5
    assert config.JOB_LEASE_SECONDS == 7.5
    assert config.ANALYZER_LOAD_ON_START is False
    assert config.LOG_LEVEL == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("JOB_MAX_ATTEMPTS", "three", "JOB_MAX_ATTEMPTS must be an integer, got 'three'"),
        ("JOB_WORKER_THREADS", "0", "JOB_WORKER_THREADS must be at least 1, got 0"),
        ("MAX_TITLE_LENGTH", "301", "MAX_TITLE_LENGTH must be at most 300, got 301"),
        ("MAX_CONTENT_LENGTH", "1.5e6", "MAX_CONTENT_LENGTH must be an integer"),
        ("JOB_LEASE_SECONDS", "soon", "JOB_LEASE_SECONDS must be a number, got 'soon'"),
        ("JOB_POLL_SECONDS", "0", "JOB_POLL_SECONDS must be at least 0.01"),
        ("ANALYZER_LOAD_ON_START", "maybe", "ANALYZER_LOAD_ON_START must be a boolean"),
    ],
)
def test_bad_values_fail_at_start_naming_the_variable(monkeypatch, name, value, message):
    """A bad value stops the process when the settings are read, saying which and why."""
    with pytest.raises(ValueError, match=message):
        fresh_config(monkeypatch, **{name: value})


@pytest.mark.parametrize(
    ("raw", "expected"), [("", 7), ("  ", 7), ("12", 12), (" 3 ", 3), ("-0", 0)]
)
def test_env_int(monkeypatch, raw, expected):
    """Blank means the default; surrounding spaces are ignored."""
    monkeypatch.setenv("SELAH_T", raw)
    assert env_int("SELAH_T", 7) == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("", 0.5), ("2", 2.0), ("0.25", 0.25), ("1e1", 10.0)]
)
def test_env_float(monkeypatch, raw, expected):
    """Floats accept any Python float literal."""
    monkeypatch.setenv("SELAH_T", raw)
    assert env_float("SELAH_T", 0.5) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("Yes", True), (" ON ", True),
     ("0", False), ("false", False), ("NO", False), ("off", False), ("", None)],
)
def test_env_bool(monkeypatch, raw, expected):
    """Booleans take 1/true/yes/on and 0/false/no/off in any case; blank means the default."""
    monkeypatch.setenv("SELAH_T", raw)
    assert env_bool("SELAH_T", True) is (True if expected is None else expected)
    assert env_bool("SELAH_T", False) is (False if expected is None else expected)


@pytest.mark.parametrize(("raw", "expected"), [("", "dflt"), ("   ", "dflt"), (" value ", "value")])
def test_env_str(monkeypatch, raw, expected):
    """Strings are stripped; blank means the default."""
    monkeypatch.setenv("SELAH_T", raw)
    assert env_str("SELAH_T", "dflt") == expected


def test_unset_variables_mean_the_default(monkeypatch):
    """An unset variable is the same as a blank one."""
    monkeypatch.delenv("SELAH_T", raising=False)
    assert (env_str("SELAH_T", "d"), env_int("SELAH_T", 1), env_float("SELAH_T", 1.5),
            env_bool("SELAH_T", True)) == ("d", 1, 1.5, True)
