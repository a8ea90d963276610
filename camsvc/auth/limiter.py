"""Failed authentications, counted per connection and per client address.

Shared by the WebSocket ``authenticate`` method and the HTTP guard, so a
client cannot double its guesses by switching surface.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any


class FailureLimiter:
    """Failed authentications per connection and per client address, in a sliding window.

    After ``max_failures`` failures within ``window`` seconds, further
    attempts from that connection (or address) are refused until the oldest
    failure leaves the window.  At most ``max_tracked`` addresses are
    remembered (the least recently failing are forgotten first), so a flood
    from many addresses cannot grow memory without bound.
    """

    def __init__(self, max_failures: int, window: float, clock: Any, max_tracked: int = 10000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self.max_tracked = max_tracked
        self._by_key: OrderedDict[str, deque] = OrderedDict()

    def retry_after(self, *keys: str) -> float | None:
        """Seconds until an attempt is allowed for every key, or None if allowed now."""
        now = self.clock.seconds()
        wait = 0.0
        for key in keys:
            times = self._prune(key, now)
            if times is not None and len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window - now)
        return wait if wait > 0 else None

    def record(self, *keys: str) -> None:
        now = self.clock.seconds()
        for key in keys:
            times = self._prune(key, now)
            if times is None:
                times = self._by_key[key] = deque(maxlen=self.max_failures)
            times.append(now)
            self._by_key.move_to_end(key)
        while len(self._by_key) > self.max_tracked:
            self._by_key.popitem(last=False)

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)

    def _prune(self, key: str, now: float) -> deque | None:
        times = self._by_key.get(key)
        if times is None:
            return None
        while times and times[0] + self.window <= now:
            times.popleft()
        if not times:
            del self._by_key[key]
            return None
        return times
