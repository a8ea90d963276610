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
