"""pytest fixtures around the MediaMTX stand-in (test support).

Owns the life cycle of :class:`tests.support.mediamtx.MediaMTXStandIn` inside
pytest-twisted tests and the contract check at teardown: any request the
MediaMTX OpenAPI document does not allow, received during the test, fails it.

Use from any test module (or once for the whole suite in ``tests/conftest.py``)::

    pytest_plugins = ["tests.support.fixtures"]       # in tests/conftest.py
    # or, per module:
    from tests.support.fixtures import mediamtx_standin, mediamtx_clip  # noqa: F401

Fixtures:

* ``mediamtx_clip`` (session): path of the H.264 fMP4 clip (ffmpeg runs once).
* ``mediamtx_standin``: a started stand-in on 127.0.0.1 (API and fake RTSP on
  free ports, ``record_root`` = the test's ``tmp_path``, no auth, no delay).
  Point the client at ``standin.url``; readers at ``standin.rtsp_port``.
* ``mediamtx_standin_factory``: ``make(**kwargs)`` -> Deferred firing with a
  started stand-in built with those keyword arguments (e.g. ``user=``,
  ``password=``, ``delay=``, ``static_paths=``, ``legacy_replies=True``); every
  one made is stopped and checked at teardown.

A test that sends a non-conforming request on purpose calls
``standin.take_violations()`` to consume (and assert on) them.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.support.mediamtx import MediaMTXStandIn, ensure_clip


@pytest.fixture(scope="session")
def mediamtx_clip(tmp_path_factory):
    return ensure_clip(tmp_path_factory.mktemp("mediamtx-clip"))


def _assert_clean(standin: MediaMTXStandIn) -> None:
    problems = []
    if standin.violations:
        problems.append("requests not allowed by MediaMTX's OpenAPI spec:\n  " + "\n  ".join(standin.violations))
    if standin.response_violations:
        problems.append("stand-in replies off the spec (stand-in bug):\n  " + "\n  ".join(standin.response_violations))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest_twisted.async_yield_fixture
async def mediamtx_standin_factory(tmp_path, mediamtx_clip):
    from twisted.internet import reactor

    made: list[MediaMTXStandIn] = []

    def make(**kwargs):
        kwargs.setdefault("record_root", tmp_path)
        kwargs.setdefault("clip_path", mediamtx_clip)
        standin = MediaMTXStandIn(reactor, **kwargs)
        made.append(standin)
        return standin.start()

    yield make
    for standin in made:
        await standin.stop()
    for standin in made:
        _assert_clean(standin)


@pytest_twisted.async_yield_fixture
async def mediamtx_standin(mediamtx_standin_factory):
    standin = await mediamtx_standin_factory()
    yield standin
