"""systemd integration: readiness, status lines and watchdog keep-alives.

This module owns the conversation with the service manager over the
``sd_notify`` protocol (``man sd_notify``), spoken directly: one datagram of
``KEY=VALUE`` lines to the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET`` (a
leading ``@`` means the Linux abstract namespace).  Nothing here blocks: the
socket is non-blocking and a failed send is logged, never raised.  Outside
systemd (no ``$NOTIFY_SOCKET``) every call is a no-op.

:class:`SystemdService` sends

* ``READY=1`` once camsvc listens and the first camera enumeration is done
  (the ``listening`` and ``discovery`` readiness checks; MediaMTX being down
  does not hold startup back: the API works without it and ``STATUS=`` says
  so);
* ``STATUS=`` one-line summaries ("Ready: 2 cameras connected, 1 client,
  MediaMTX up") when readiness or cameras change, refreshed periodically;
* ``WATCHDOG=1`` from a reactor timer every half ``$WATCHDOG_USEC`` (so a
  stuck reactor gets the service restarted by ``WatchdogSec=``);
* ``RELOADING=1`` / ``READY=1`` around a configuration reload, and
  ``STOPPING=1`` on shutdown.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()

#: Readiness checks that must pass before READY=1 (those not registered are ignored).
READY_CHECKS = ("listening", "discovery")
#: Variables of the protocol, removed from os.environ so child processes do not inherit them.
ENV_NAMES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
#: Seconds between STATUS refreshes when no watchdog asks for more often.
STATUS_INTERVAL = 15.0


class Notifier:
    """Sends sd_notify datagrams to one address; a no-op when ``address`` is empty."""

    def __init__(self, address: str | None) -> None:
        self.address: str | bytes | None = None
        self._sock: socket.socket | None = None
        if not address:
            return
        if address.startswith("@"):
            self.address = "\0" + address[1:]
        elif address.startswith("/"):
            self.address = address
        else:
            log.warn("Ignoring NOTIFY_SOCKET={address}: not a unix socket path", address=address)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Notifier:
        return cls(environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; True when it was sent."""
        if self.address is None:
            return False
        payload = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self.address)
            return True
        except OSError as exc:
            log.warn("systemd notification failed: {error}", error=exc.strerror or str(exc))
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between keep-alives (half of ``$WATCHDOG_USEC``), or None when no watchdog is asked for."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner.isdigit() and int(owner) != (os.getpid() if pid is None else pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 2_000_000


def summary(app: Any) -> str:
    """A one-line state of the service for ``STATUS=``."""
    health = app.health
    cameras = app.cameras.connected()
    clients = len(app.hub)
    parts = [
        f"{len(cameras)} camera{'s' if len(cameras) != 1 else ''} connected",
        f"{clients} client{'s' if clients != 1 else ''}",
    ]
    mediamtx = health.report()["checks"].get("mediamtx")
    if mediamtx is not None:
        if mediamtx["ok"]:
            parts.append("MediaMTX up")
        else:
            parts.append("MediaMTX not contacted yet" if mediamtx["reason"].startswith("starting") else "MediaMTX down")
    if health.ready:
        state = "Ready"
    elif app.was_ready or _checks_ok(health, READY_CHECKS):
        state = "Degraded (" + "; ".join(health.reasons()) + ")"
    else:
        state = "Starting (" + "; ".join(health.reasons()) + ")"
    return f"{state}: " + ", ".join(parts)


def _checks_ok(health: Any, names: tuple[str, ...]) -> bool:
    checks = health.report()["checks"]
    return all(checks[name]["ok"] for name in names if name in checks)


class SystemdService(Service):
    """Talks to systemd for the running App.

    Collaborators: a :class:`Notifier`, the App (``health``, ``cameras``,
    ``hub``), ``clock`` (``IReactorTime``, for the keep-alive timer) and the
    watchdog interval in seconds (None: no watchdog).
    """

    name = "systemd"

    def __init__(self, notifier: Notifier, app: Any, clock: Any, watchdog: float | None = None) -> None:
        self.notifier = notifier
        self.app = app
        self.clock = clock
        self.watchdog = watchdog
        self.ready_sent = False
        self._status = ""
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        if not self.notifier.enabled:
            return
        self.app.health.subscribe(self._health_changed)
        self.app.cameras.subscribe(self)
        self._health_changed("", True, "")  # READY=1 now if the checks already pass
        interval = STATUS_INTERVAL if self.watchdog is None else min(self.watchdog, STATUS_INTERVAL)
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(interval, now=True).addErrback(lambda f: log.failure("systemd keep-alive loop failed", f))

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self.notifier.enabled:
            self.notifier.send("STOPPING=1", "STATUS=Shutting down")

    # -- events -----------------------------------------------------------------

    def _tick(self) -> None:
        if self.watchdog is not None:
            self.notifier.send("WATCHDOG=1")
        self.update_status()

    def _health_changed(self, name: str, ok: bool, reason: str) -> None:
        if not self.running:
            return
        if not self.ready_sent and _checks_ok(self.app.health, READY_CHECKS) and self.app.health.is_ok("listening"):
            self.ready_sent = True
            self._status = summary(self.app)
            self.notifier.send("READY=1", f"STATUS={self._status}")
            log.info("Told systemd we are ready: {status}", status=self._status)
            return
        self.update_status()

    def camera_added(self, camera: Any) -> None:
        self.update_status()

    def camera_removed(self, camera: Any) -> None:
        self.update_status()

    def camera_changed(self, camera: Any) -> None:
        self.update_status()

    def update_status(self) -> None:
        """Send STATUS= when the summary changed."""
        if not self.running or not self.notifier.enabled:
            return
        try:
            text = summary(self.app)
        except Exception:
            log.failure("Building the systemd status line failed")
            return
        if text != self._status:
            self._status = text
            self.notifier.send(f"STATUS={text}")

    # -- reload -----------------------------------------------------------------

    def reloading(self) -> None:
        if self.notifier.enabled:
            self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={_monotonic_usec()}", "STATUS=Reloading configuration")

    def reloaded(self) -> None:
        if self.notifier.enabled:
            self._status = ""
            self.notifier.send("READY=1")
            self.update_status()


def _monotonic_usec() -> int:
    # systemd compares MONOTONIC_USEC with CLOCK_MONOTONIC, not with the reactor's clock.
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def setup_systemd(app: Any, clock: Any, environ: dict) -> SystemdService:
    """Build the service from the environment and remove the protocol's variables from it."""
    notifier = Notifier.from_environ(environ)
    interval = watchdog_interval(environ)
    for name in ENV_NAMES:
        environ.pop(name, None)
    service = SystemdService(notifier, app, clock, interval)
    if notifier.enabled:
        log.info(
            "systemd notify socket in use{watchdog}",
            watchdog=f"; watchdog keep-alive every {interval:g}s" if interval else "",
        )
    return service
