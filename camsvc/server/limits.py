"""Per-connection request rate limit (an engine guard).

``server.rate_limit_per_minute`` requests per connection and minute, enforced
as a token bucket that holds one minute's allowance and refills continuously:
a client may burst up to the limit, then gets one request every
``60 / limit`` seconds.  Every request counts, each element of a batch too,
authenticated or not.  A refused request gets -32002 with ``data.retry_after``
(seconds until the next request is accepted); the first refusal of a burst is
logged, not every one.  The other limits live where they act: message size,
binary frames, connection count, Origin, idle timeout and the outgoing buffer
in :mod:`camsvc.server.ws`; batch length in :mod:`camsvc.server.rpc`; failed
authentications in :mod:`camsvc.auth`.

Before authentication a connection has a budget of its own
(:class:`UnauthenticatedBudget`): three methods, a small rate.
:class:`AddressBuckets` rate-limits open HTTP resources per client address.
"""

from __future__ import annotations

import math
from typing import Any

from twisted.logger import Logger

from camsvc.common.clocks import steady
from camsvc.common.errors import AuthenticationRequired, RateLimitExceeded

log = Logger()


class RateLimiter:
    """Engine guard ``(session, method)``.  Collaborator: a clock (``seconds()``).

    The bucket lives in ``session.extra["rate"]`` as ``[tokens, last, limited]``,
    so it dies with the connection.
    """

    def __init__(self, per_minute: int, clock: Any) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.rate = per_minute / 60.0

    #: The configuration key :meth:`config_reloaded` applies live.
    RELOAD_KEYS = ("server.rate_limit_per_minute",)

    def config_reloaded(self, old: Any, new: Any) -> None:
        self.per_minute = new.server.rate_limit_per_minute
        self.rate = self.per_minute / 60.0

    def __call__(self, session: Any, method: Any) -> None:
        if self.per_minute <= 0:
            return
        now = steady(self.clock)  # durations only: a wall-clock step is no time passing
        bucket = session.extra.get("rate")
        if bucket is None:
            bucket = session.extra["rate"] = [float(self.per_minute), now, False]
        tokens = min(float(self.per_minute), bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            bucket[2] = False
            return
        bucket[0] = tokens
        retry_after = math.ceil((1.0 - tokens) / self.rate * 10) / 10
        if not bucket[2]:
            bucket[2] = True
            log.warn(
                "Connection {conn_id} ({peer}) exceeds {limit} requests per minute; refusing until it slows down",
                conn_id=session.id,
                peer=session.peer,
                limit=self.per_minute,
            )
        raise RateLimitExceeded(
            f"Rate limit exceeded: at most {self.per_minute} requests per minute on one connection; "
            f"retry in {retry_after:g} s",
            data={"retry_after": retry_after, "limit_per_minute": self.per_minute},
        )


#: What a connection may call before it authenticates.
UNAUTHENTICATED_METHODS = frozenset({"ping", "authenticate", "rpc.discover"})


class UnauthenticatedBudget:
    """Engine guard: the budget of a connection that has not authenticated.

    Before authentication a connection may call only
    :data:`UNAUTHENTICATED_METHODS`, at ``per_minute`` requests per minute in
    a bucket of ``burst`` (each element of a batch counts), so a stranger's
    batches of ``rpc.discover`` cost a few answers, then -32002.  Other methods
    get -32001 without running.  Authenticated sessions are not affected.
    """

    RELOAD_KEYS = ("server.unauthenticated_rate_per_minute", "server.unauthenticated_burst")

    def __init__(self, per_minute: int, burst: int, clock: Any) -> None:
        self.clock = clock
        self.per_minute = per_minute
        self.burst = burst

    def config_reloaded(self, old: Any, new: Any) -> None:
        self.per_minute = new.server.unauthenticated_rate_per_minute
        self.burst = new.server.unauthenticated_burst

    def __call__(self, session: Any, method: Any) -> None:
        if session.role is not None:
            return
        if method.name not in UNAUTHENTICATED_METHODS:
            raise AuthenticationRequired(f"Authentication required: call 'authenticate' before '{method.name}'")
        now = steady(self.clock)  # durations only: a wall-clock step is no time passing
        bucket = session.extra.get("anon_rate")
        if bucket is None:
            bucket = session.extra["anon_rate"] = [float(self.burst), now]
        rate = self.per_minute / 60.0
        tokens = min(float(self.burst), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return
        bucket[0] = tokens
        retry_after = math.ceil((1.0 - tokens) / rate * 10) / 10
        raise RateLimitExceeded(
            f"Rate limit exceeded: before authentication at most {self.per_minute} requests per minute; "
            f"retry in {retry_after:g} s",
            data={"retry_after": retry_after, "limit_per_minute": self.per_minute},
        )


class AddressBuckets:
    """Token buckets per client address (for open HTTP resources such as ``/openrpc.json``).

    ``allow(address) -> None`` or the seconds to wait.  At most ``max_tracked``
    addresses are remembered (least recently used forgotten first).
    """

    def __init__(self, per_minute: int, burst: int, clock: Any, max_tracked: int = 10000) -> None:
        from collections import OrderedDict

        self.per_minute = per_minute
        self.burst = burst
        self.clock = clock
        self.max_tracked = max_tracked
        self._buckets: OrderedDict[str, list] = OrderedDict()

    def allow(self, address: str) -> float | None:
        now = steady(self.clock)  # durations only: a wall-clock step is no time passing
        rate = self.per_minute / 60.0
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = [float(self.burst), now]
            while len(self._buckets) > self.max_tracked:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(address)
        tokens = min(float(self.burst), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return None
        bucket[0] = tokens
        return (1.0 - tokens) / rate
