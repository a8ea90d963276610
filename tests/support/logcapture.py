"""Capture twisted.logger events in tests (test support).

``captured_logs()`` is a context manager yielding a list that fills with
``"<level> <formatted text>"`` strings for every event logged meanwhile
(``log.failure`` events include the exception text).  The pytest fixture
``twisted_logs`` wraps it for one test.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from twisted.logger import formatEvent, globalLogPublisher


@contextmanager
def captured_logs():
    lines: list[str] = []

    def observer(event):
        level = event.get("log_level")
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += f" [{failure.getErrorMessage()}]"
        lines.append(f"{level.name if level else '?'} {text}")

    globalLogPublisher.addObserver(observer)
    try:
        yield lines
    finally:
        globalLogPublisher.removeObserver(observer)


@pytest.fixture
def twisted_logs():
    with captured_logs() as lines:
        yield lines
