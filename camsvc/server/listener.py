"""The listening socket: binds the endpoint with the Site, closes WebSockets gracefully on stop.

:class:`ListenerService` owns the ``listening`` readiness condition; a port
that cannot be bound stops startup with one line (exit status 1).  With
``loopback_only`` (``auth.required: false``), the address actually bound must
be a loopback one: an explicit ``server.endpoint`` can listen on every
interface whatever ``server.host`` says, so the rule is checked on the
bound socket, and a violation closes it and exits with one line and status 78.

:class:`FdGuard` keeps the process from running out of file descriptors
(``EMFILE``): when fewer than ``reserve`` are free, accepting pauses (the
listening socket stops being read; new clients wait in the kernel backlog),
one line is logged, and accepting resumes once enough are free again.
"""

from __future__ import annotations

import ipaddress
import os
import resource
import sys
from typing import Any

from twisted.application.service import Service
from twisted.internet.address import UNIXAddress
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()


class ListenerService(Service):
    """Listens on an endpoint with the Site; on stop, closes WebSockets gracefully.

    Binding happens in ``privilegedStartService`` so a port that cannot be
    bound stops startup with a clear message.  ``port`` is the
    IListeningPort once bound.  Collaborators: the endpoint, the Site, the
    WebSocket factory (for the 1001 "going away" close) and the App's health.
    """

    name = "listener"

    def __init__(
        self,
        endpoint: Any,
        endpoint_text: str,
        site: Any,
        ws_factory: Any,
        health: Any,
        clock: Any,
        shutdown_timeout: float,
        *,
        loopback_only: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.endpoint_text = endpoint_text
        self.site = site
        self.ws_factory = ws_factory
        self.health = health
        self.clock = clock
        self.shutdown_timeout = shutdown_timeout
        self.loopback_only = loopback_only
        self.port: Any = None
        self._listening: Deferred | None = None
        health.require("listening")

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        outcome: list = []
        self._listening = self.endpoint.listen(self.site)
        self._listening.addBoth(outcome.append)
        if not outcome:  # an endpoint that binds asynchronously
            self._listening.addCallbacks(self._bound, self._failed_later)
        elif isinstance(outcome[0], Failure):
            message = outcome[0].getErrorMessage()
            self.health.set("listening", False, f"cannot listen: {message}")
            _one_line(f"camsvc: cannot listen on {self.endpoint_text}: {message}")
            raise SystemExit(1)
        else:
            self._bound(outcome[0])

    def _bound(self, port: Any) -> Any:
        address = port.getHost()
        if hasattr(self.site, "accept_guard"):
            self.site.accept_guard = FdGuard(port, self.clock)
        host = getattr(address, "host", None)
        if self.loopback_only and not _is_loopback(address):
            port.stopListening()
            message = (
                f"auth.required: false is only allowed on a loopback address, but {self.endpoint_text} "
                f"listens on {host}; set auth.allow_insecure_bind: true to override (development only)"
            )
            self.health.set("listening", False, "refused: not a loopback address")
            _one_line(f"camsvc: invalid configuration: {message}")
            raise SystemExit(78)
        self.port = port
        log.info("Listening on {host}:{port}", host=address.host, port=address.port)
        self.health.set("listening", True)
        return port

    def _failed_later(self, failure: Failure) -> None:
        self.health.set("listening", False, f"cannot listen: {failure.getErrorMessage()}")
        log.failure("Cannot listen on {endpoint}; stopping", failure, endpoint=self.endpoint_text)
        self.clock.stop()

    def startService(self) -> None:
        if self._listening is None:
            self.privilegedStartService()
        super().startService()

    def stopService(self) -> Deferred:
        super().stopService()
        self.health.set("listening", False, "shutting down")
        steps = []
        guard = getattr(self.site, "accept_guard", None)
        if guard is not None:
            guard.stop()
        if self.port is not None:
            steps.append(maybeDeferred(self.port.stopListening))
        self.ws_factory.close_all()
        steps.append(self._wait_closed())
        return DeferredList(steps)

    def _wait_closed(self) -> Deferred:
        """Wait until every WebSocket has closed, at most shutdown_timeout seconds."""
        d: Deferred = Deferred()
        deadline = self.clock.seconds() + self.shutdown_timeout

        def check() -> None:
            if not len(self.ws_factory.hub) or self.clock.seconds() >= deadline:
                for conn in self.ws_factory.hub.connections:
                    conn.dropConnection(abort=True)
                d.callback(None)
            else:
                self.clock.callLater(0.05, check)

        check()
        return d


def _is_loopback(address: Any) -> bool:
    """True for a loopback IP (127.0.0.0/8, ::1, ::ffff:127.x) or a UNIX socket (local by nature);
    False for a wildcard or any other address."""
    if isinstance(address, UNIXAddress):
        return True
    host = getattr(address, "host", None)
    if not isinstance(host, str):
        return False
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def _one_line(text: str) -> None:
    """The startup failure line, on the real stderr (twistd has redirected sys.stderr into the log by now)."""
    stream = sys.__stderr__ or sys.stderr
    stream.write(text + "\n")
    stream.flush()


def open_fds() -> int:
    """File descriptors this process has open (``/proc/self/fd``)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # pragma: no cover - /proc is always there on Linux
        return 0


def fd_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class FdGuard:
    """Called by the Site for every accepted connection: False to refuse it (and pause accepting).

    Counting descriptors lists ``/proc/self/fd``, so it is done only when
    the accepts since the last count could have used half of the margin left,
    or ``every`` seconds passed.  Collaborators: the listening
    ``port`` (``stopReading``/``startReading``), a clock, and (for tests)
    ``count``/``limit`` callables.
    """

    def __init__(
        self,
        port: Any,
        clock: Any,
        *,
        reserve: int | None = None,
        every: float = 0.5,
        count: Any = open_fds,
        limit: Any = fd_limit,
    ) -> None:
        self.port = port
        self.clock = clock
        self.count = count
        self.limit = limit
        self.reserve = reserve
        self.every = every
        self.paused = False
        self._checked = float("-inf")
        self._accepts = 0
        self._budget = 0
        self._call: Any = None

    def _reserve(self, limit: int) -> int:
        return self.reserve if self.reserve is not None else max(16, min(256, limit // 20))

    def __call__(self) -> bool:
        if self.paused:
            return False
        now = self.clock.seconds()
        self._accepts += 1
        # Each accept takes one descriptor: no need to count again before half
        # of the last margin could be used up (or ``every`` seconds passed,
        # for descriptors opened otherwise).
        if now - self._checked < self.every and self._accepts < self._budget:
            return True
        self._checked = now
        self._accepts = 0
        limit, used = self.limit(), self.count()
        reserve = self._reserve(limit)
        if limit - used > reserve:
            self._budget = max(1, (limit - used - reserve) // 2)
            return True
        self.paused = True
        try:
            self.port.stopReading()
        except Exception:  # noqa: BLE001 - a port that cannot pause still refuses below
            log.failure("Could not pause accepting")
        log.warn(
            "Accepting paused: {used} of {limit} file descriptors in use (LimitNOFILE); "
            "new clients wait until {reserve} are free",
            used=used,
            limit=limit,
            reserve=reserve,
        )
        self._call = self.clock.callLater(1.0, self._check)
        return False

    def _check(self) -> None:
        self._call = None
        limit, used = self.limit(), self.count()
        if limit - used > 2 * self._reserve(limit):
            self.paused = False
            self._checked = float("-inf")
            try:
                self.port.startReading()
            except Exception:  # noqa: BLE001
                log.failure("Could not resume accepting")
            log.info("Accepting resumed: {used} of {limit} file descriptors in use", used=used, limit=limit)
            return
        self._call = self.clock.callLater(1.0, self._check)

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
