"""Shared fixtures: the MediaMTX stand-in fixtures are available to every test,
and no test may create camsvc's production state directory."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.support.fixtures"]

#: camsvc's default state directory (config defaults).  Tests run as root in CI,
#: where `make test-deb` installs and purges the real package: a test that
#: forgot to point its state/auth paths at tmp_path would leave root-owned files
#: there (a root-owned jwt_secret breaks the installed service).
PRODUCTION_STATE = "/var/lib/camsvc"
#: Where camsvc is installed for real, the directory is its own: no check then.
_GUARD = not os.path.exists(PRODUCTION_STATE)


@pytest.fixture(autouse=True)
def _production_state_untouched():
    yield
    if _GUARD and os.path.exists(PRODUCTION_STATE):
        found = [os.path.join(b, f) for b, _d, fs in os.walk(PRODUCTION_STATE) for f in fs]
        raise AssertionError(
            f"this test (or a module fixture before it) created {PRODUCTION_STATE}: {found}; "
            "point storage.state_dir (and auth files) at tmp_path"
        )


#: Skips that are a choice, not a missing tool: the QEMU system tests run in their own stage.
_CHOSEN_SKIPS = ("system test: run it with `make test-system`",)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``CI=true`` a skipped test fails: a missing tool must not pass silently.

    Only the skips in :data:`_CHOSEN_SKIPS` (tests that belong to another
    stage of ``make test``) stay skips.
    """
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") != "true" or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(chosen in reason for chosen in _CHOSEN_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true (a required tool is missing?): {reason}"
