"""Polling on the real reactor, for pytest-twisted tests that wait for a condition."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater


async def eventually(
    predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition", interval: float = 0.02
) -> Any:
    """Return the first truthy value of ``predicate()`` (awaited when it is a coroutine
    function), polling every ``interval`` seconds; fail after ``timeout`` seconds."""
    deadline = reactor.seconds() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await deferLater(reactor, interval, lambda: None)
