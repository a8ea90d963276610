"""Failed authentications, counted per key (connection, client address, address + credential).

Shared by the WebSocket ``authenticate`` method and the HTTP guard, so a
client cannot double its guesses by switching surface.  Only failures are
limited: a caller checks the credential first and a valid one always works,
whatever the count for its address (many users share one address behind a NAT
or a proxy).  Download-link failures use a limiter of their own.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

from camsvc.common.clocks import steady


class _Entry:
    __slots__ = ("times", "strikes", "locked_until")

    def __init__(self, max_failures: int) -> None:
        self.times: deque = deque(maxlen=max_failures)
        self.strikes = 0
        self.locked_until = 0.0


class FailureLimiter:
    """Failures per key in a sliding window, with backoff.

    After ``max_failures`` failures within ``window`` seconds a key is locked
    until the oldest failure leaves the window.  Each further failure while
    locked doubles the lock (``window * 2**strikes`` from that failure, at most
    ``max_backoff`` seconds).  At most ``max_tracked`` keys are remembered (the
    least recently failing are forgotten first), so a flood from many
    addresses cannot grow memory without bound.
    """

    def __init__(
        self, max_failures: int, window: float, clock: Any, max_tracked: int = 10000, max_backoff: float = 900.0
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self.max_tracked = max_tracked
        self.max_backoff = max_backoff
        self._by_key: OrderedDict[str, _Entry] = OrderedDict()

    def retry_after(self, *keys: str) -> float | None:
        """Seconds until a failure is no longer refused for every key, or None if not locked now."""
        now = steady(self.clock)  # durations only: a wall-clock step is no time passing
        wait = 0.0
        for key in keys:
            entry = self._prune(key, now)
            if entry is not None:
                wait = max(wait, self._wait(entry, now))
        return wait if wait > 0 else None

    def _wait(self, entry: _Entry, now: float) -> float:
        wait = entry.locked_until - now
        if len(entry.times) >= self.max_failures:
            wait = max(wait, entry.times[0] + self.window - now)
        return wait

    def record(self, *keys: str) -> None:
        now = steady(self.clock)  # durations only: a wall-clock step is no time passing
        for key in keys:
            entry = self._prune(key, now)
            if entry is None:
                entry = self._by_key[key] = _Entry(self.max_failures)
            if self._wait(entry, now) > 0:
                entry.strikes += 1
                entry.locked_until = now + min(self.window * 2**entry.strikes, self.max_backoff)
            else:
                entry.times.append(now)
            self._by_key.move_to_end(key)
        while len(self._by_key) > self.max_tracked:
            self._by_key.popitem(last=False)

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)

    def _prune(self, key: str, now: float) -> _Entry | None:
        entry = self._by_key.get(key)
        if entry is None:
            return None
        times = entry.times
        while times and times[0] + self.window <= now:
            times.popleft()
        if not times and entry.locked_until <= now:
            del self._by_key[key]
            return None
        return entry
