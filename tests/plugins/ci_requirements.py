"""Turn skips of service- and data-marked tests into failures where CI says they must run.

Tests marked `postgres` or `redis` skip when their server's URL is not set, `llama` tests when
llama-cpp-python or the SmolLM2 GGUF is not installed, `mount` tests when a tmpfs cannot be
mounted, and `data` tests skip
when `../shared/data` is missing: right on a laptop, wrong in CI, where a skip would hide a
broken setup behind a green run. `.ci/run` sets SELAH_REQUIRE_SERVICES=1 (all five markers) and
SELAH_DATA_REQUIRED=1 (`data`). Registered with `-p tests.plugins.ci_requirements` in pyproject.
"""

import os

import pytest

# Marker -> the variables that, set to 1, make its skips fail.
REQUIRED_BY = {
    "postgres": ("SELAH_REQUIRE_SERVICES",),
    "redis": ("SELAH_REQUIRE_SERVICES",),
    "data": ("SELAH_REQUIRE_SERVICES", "SELAH_DATA_REQUIRED"),
    "llama": ("SELAH_REQUIRE_SERVICES",),
    "mount": ("SELAH_REQUIRE_SERVICES",),
}


def _requiring_variable(item: pytest.Item) -> tuple[str, str] | None:
    """`(marker, variable)` when a variable in force requires this item to run, else None."""
    for marker, variables in REQUIRED_BY.items():
        if item.get_closest_marker(marker) is None:
            continue
        for variable in variables:
            if os.environ.get(variable, "").strip() == "1":
                return marker, variable
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Report a skip of a required test as a failure that quotes the skip's reason."""
    report = yield
    if not report.skipped or hasattr(report, "wasxfail"):
        return report
    required = _requiring_variable(item)
    if required is None:
        return report
    marker, variable = required
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"{marker}-marked test skipped while {variable}=1 requires it to run: {reason}"
    )
    return report
