"""The CI plugin fails skipped service and data tests only when the environment requires them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = '''
import pytest

@pytest.mark.postgres
def test_needs_postgres():
    pytest.skip("TEST_POSTGRES_URL not set")

@pytest.mark.data
def test_needs_data():
    pytest.skip("no data")

def test_unmarked_skip():
    pytest.skip("not a service test")

@pytest.mark.redis
@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
'''


def run_sample(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run SAMPLE in a child pytest with the plugin and exactly `env` among its variables."""
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    child_env = {k: v for k, v in os.environ.items()
                 if k not in ("SELAH_REQUIRE_SERVICES", "SELAH_DATA_REQUIRED")}
    child_env.update(env, PYTHONPATH=str(REPO))
    markers = ["-o", "markers=postgres\nredis\ndata"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.plugins.ci_requirements", "-p",
         "no:cacheprovider", "-rA", "--strict-markers", *markers, "test_sample.py"],
        cwd=tmp_path, env=child_env, capture_output=True, text=True, timeout=60,
    )


def test_skips_stay_skips_by_default(tmp_path):
    """On a laptop without the services, marked tests skip as usual."""
    result = run_sample(tmp_path)
    assert result.returncode == 0, result.stdout
    assert "3 skipped, 1 xfailed" in result.stdout


@pytest.mark.parametrize(
    ("env", "failing"),
    [
        ({"SELAH_REQUIRE_SERVICES": "1"}, ["test_needs_postgres", "test_needs_data"]),
        ({"SELAH_DATA_REQUIRED": "1"}, ["test_needs_data"]),
    ],
)
def test_required_skips_fail(tmp_path, env, failing):
    """Marked skips fail with the skip's reason; unmarked skips and xfails are left alone."""
    result = run_sample(tmp_path, **env)
    assert result.returncode == 1, result.stdout
    for name in failing:
        assert f"FAILED test_sample.py::{name}" in result.stdout
    assert "test_unmarked_skip" not in " ".join(
        line for line in result.stdout.splitlines() if line.startswith("FAILED"))
    assert f"{len(failing)} failed" in result.stdout
    assert "requires it to run" in result.stdout
    assert "1 xfailed" in result.stdout
