"""MediaMTX reachability: is the control API answering, and did MediaMTX restart?

:class:`Monitor` probes MediaMTX every ``mediamtx.health_interval`` seconds
with ``GET /v3/info`` (``GET /v3/config/global/get`` on releases without
``/v3/info``), and with the same beat refreshes the per-path statistics cache
from ``GET /v3/paths/list`` (so API calls and metrics never wait on MediaMTX
for them).  It owns:

* the ``mediamtx`` readiness condition (``/health/ready`` answers 503 with the
  reason while MediaMTX is down);
* ``system_status_update`` notifications when MediaMTX goes down and when it
  comes back;
* restart detection: ``/v3/info`` ``started`` changed -> listeners are told
  ``restarted`` (MediaMTX forgot every path camsvc made);
* configuration-reload detection: MediaMTX re-reading its configuration file
  drops API-made paths without changing ``started``; every probe compares the
  path list with the paths camsvc made (``expected_paths``, set by the
  reconciler) and tells listeners ``paths_lost`` with the missing names, so
  they are re-applied within one ``health_interval``.

Other code reports failures it sees (:meth:`Monitor.report`) so a dead MediaMTX
is noticed at once, and asks :meth:`Monitor.check_available` before calling
MediaMTX so a request fails fast with -32006 instead of waiting for a timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from camsvc.common.errors import MediaMTXUnavailable
from camsvc.mediamtx.client import (
    MediaMTXAPIError,
    MediaMTXError,
    MediaMTXUnauthorized,
    MediaMTXUnreachable,
)

log = Logger()

HEALTH = "mediamtx"
#: Probe period during the first FAST_WINDOW seconds of an outage (a restart is
#: usually over by then), so camsvc sees MediaMTX back within a fraction of a second.
FAST_RETRY = 0.25
FAST_WINDOW = 10.0
#: Delay of the probe a poke asks for (lets a restarting MediaMTX bind its port).
POKE_DELAY = 0.05
UNKNOWN = "unknown"
UP = "up"
DOWN = "down"


def reason_for(error: MediaMTXError, api_url: str) -> str:
    """A one-line, operator-oriented reason for ``error``."""
    if isinstance(error, MediaMTXUnauthorized):
        return (
            f"MediaMTX API at {api_url} refused camsvc's credentials ({error.status} {error.error}); "
            "check mediamtx.api_user/api_pass and the api permission in authInternalUsers"
        )
    if isinstance(error, MediaMTXAPIError):
        return f"MediaMTX API at {api_url} failed: {error.request} -> {error.status} {error.error}"
    return error.message


def path_stats(item: dict) -> dict:
    """Normalised run-time state of one ``/v3/paths/list`` item (any MediaMTX generation)."""
    source = item.get("source")
    ready = item.get("ready")
    if ready is None:
        ready = item.get("online", item.get("available", False))
    received = item.get("inboundBytes", item.get("bytesReceived", 0))
    sent = item.get("outboundBytes", item.get("bytesSent", 0))
    tracks = []
    for track in item.get("tracks2") or []:
        if isinstance(track, dict) and track.get("codec"):
            tracks.append(track["codec"])
    if not tracks:
        for track in item.get("tracks") or []:
            tracks.append(track if isinstance(track, str) else str(track))
    return {
        "name": item.get("name", ""),
        "ready": bool(ready),
        "ready_time": item.get("readyTime", item.get("onlineTime")),
        "source": source.get("type") if isinstance(source, dict) else None,
        "readers": len(item.get("readers") or []),
        "bytes_received": int(received or 0),
        "bytes_sent": int(sent or 0),
        "tracks": tracks,
    }


class Monitor(Service):
    """Periodic reachability probe, readiness, notifications, restart detection.

    Collaborators: ``client`` (:class:`~camsvc.mediamtx.client.MediaMTXClient`),
    ``clock``, ``health`` (:class:`~camsvc.ops.health.Health`), ``publish``
    (``hub.publish``), ``interval`` seconds.  Listeners added with
    :meth:`subscribe` get ``listener(event, info)`` with event ``"up"``
    (first contact or back after being down), ``"restarted"`` or ``"down"``.
    """

    name = "mediamtx-monitor"

    def __init__(
        self,
        client: Any,
        clock: Any,
        health: Any,
        publish: Callable[..., Any],
        interval: float,
        api_url: str,
    ) -> None:
        self.client = client
        self.clock = clock
        self.health = health
        self.publish = publish
        self.interval = interval
        self.api_url = api_url
        self.state = UNKNOWN
        self.reason = "starting"
        self.version: str | None = None
        self.started: str | None = None
        self.has_info = True
        self.since = clock.seconds()
        self.last_check: float | None = None
        self.restarts = 0
        self.stats: dict[str, dict] = {}
        self.stats_time: float | None = None
        self.failed_probes = 0
        self._listeners: list[Callable[[str, dict], None]] = []
        #: ``() -> set of path names`` camsvc made and expects to exist (the reconciler's ledger).
        self.expected_paths: Callable[[], set[str]] | None = None
        self.reloads_detected = 0
        self._next: Any = None
        self._probing: Deferred | None = None
        self._poked = False
        health.require(HEALTH, "starting: MediaMTX not contacted yet")

    # -- service -----------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._schedule(0)

    def stopService(self) -> Any:
        super().stopService()
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        probing, self._probing = self._probing, None
        if probing is not None and not probing.called:
            probing.cancel()
        return None

    # -- scheduling ----------------------------------------------------------------

    def _schedule(self, delay: float) -> None:
        if not self.running:
            return
        if self._next is not None and self._next.active():
            if self._next.getTime() <= self.clock.seconds() + delay:
                return
            self._next.cancel()
        self._next = self.clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._next = None
        self.probe()

    def next_delay(self) -> float:
        """Seconds to the next probe: the interval, except every FAST_RETRY seconds during
        the first FAST_WINDOW seconds of an outage (a refused loopback connect is cheap)."""
        if self.state == DOWN and self.clock.seconds() - self.since < FAST_WINDOW:
            return min(self.interval, FAST_RETRY)
        return self.interval

    def poke(self) -> None:
        """A hint that MediaMTX may have changed (its idle connection closed): probe soon."""
        if not self.running:
            return
        if self._probing is not None:
            self._poked = True
        else:
            self._schedule(POKE_DELAY)

    # -- reading -----------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self.state == UP

    def subscribe(self, listener: Callable[[str, dict], None]) -> None:
        self._listeners.append(listener)

    def check_available(self) -> None:
        """Raise MediaMTXUnavailable (-32006) with the reason when MediaMTX is not answering."""
        if self.state == UP:
            return
        reason = self.reason if self.state == DOWN else "MediaMTX has not been contacted yet"
        raise MediaMTXUnavailable(f"MediaMTX is unavailable: {reason}", data={"reason": reason})

    def unavailable(self, error: MediaMTXError) -> MediaMTXUnavailable:
        """Report ``error`` and return the -32006 error to raise for it."""
        self.report(error)
        reason = reason_for(error, self.api_url)
        return MediaMTXUnavailable(f"MediaMTX is unavailable: {reason}", data={"reason": reason})

    def status(self) -> dict:
        return {
            "state": self.state,
            "available": self.available,
            "reason": "" if self.available else self.reason,
            "since": self.since,
            "api_url": self.api_url,
            "version": self.version,
            "started": self.started,
            "last_check": self.last_check,
            "restarts_seen": self.restarts,
        }

    # -- probing -----------------------------------------------------------------

    def probe(self) -> Deferred:
        """Check MediaMTX now (the loop calls this); the Deferred never fails."""
        if self._probing is not None:
            return self._probing
        d = Deferred.fromCoroutine(self._probe())
        self._probing = d

        def done(result: Any) -> None:
            if self._probing is d:
                self._probing = None
            poked, self._poked = self._poked, False
            self._schedule(POKE_DELAY if poked else self.next_delay())

        d.addErrback(lambda f: log.failure("MediaMTX probe failed unexpectedly", f))
        d.addBoth(done)
        return d

    async def _probe(self) -> None:
        self.last_check = self.clock.seconds()
        try:
            info = await self._identity()
        except MediaMTXError as exc:
            if not self.running:  # the request was cancelled by stopService
                return
            self.failed_probes += 1
            self.report(exc)
            return
        self.failed_probes = 0
        self._came_up(info)
        # Taken before the list is asked for: a path camsvc adds meanwhile is not "lost".
        expected = self._expected()
        try:
            items = await self.client.list_paths()
        except MediaMTXError as exc:
            if self.running:
                log.warn("Cannot read MediaMTX path states: {error}", error=exc.message)
                self.report(exc)
            return
        self.stats = {}
        for item in items:
            stats = path_stats(item)
            self.stats[stats["name"]] = stats
        self.stats_time = self.clock.seconds()
        self._check_paths(expected)

    def _expected(self) -> set[str]:
        if self.expected_paths is None:
            return set()
        try:
            return set(self.expected_paths())
        except Exception:
            log.failure("Reading the expected MediaMTX paths failed")
            return set()

    def _check_paths(self, expected: set[str]) -> None:
        """Paths camsvc made (before and still) that MediaMTX no longer lists: its configuration was reloaded."""
        missing = sorted((expected & self._expected()) - set(self.stats))
        if not missing:
            return
        self.reloads_detected += 1
        log.warn(
            "MediaMTX no longer has {count} path(s) camsvc made ({names}) although it did not restart "
            "(its configuration was reloaded?): re-applying them",
            count=len(missing),
            names=", ".join(missing[:10]),
        )
        self._tell("paths_lost", {"missing": missing})

    async def _identity(self) -> dict:
        """``/v3/info``, or the global config on releases that lack it (no ``started`` then)."""
        if self.has_info:
            try:
                return await self.client.info()
            except MediaMTXAPIError as exc:
                if not exc.route_missing:
                    raise
                log.info("MediaMTX has no /v3/info (older than v1.9?); probing /v3/config/global/get instead")
                self.has_info = False
        await self.client.global_config()
        return {}

    def report(self, error: MediaMTXError) -> None:
        """A request failed with ``error``: MediaMTX is down if it did not answer or refused us."""
        if isinstance(error, (MediaMTXUnreachable, MediaMTXUnauthorized)) or (
            isinstance(error, MediaMTXAPIError) and error.status >= 500 and error.request.endswith("/v3/info")
        ):
            self._went_down(reason_for(error, self.api_url), error)

    def _went_down(self, reason: str, error: MediaMTXError) -> None:
        previous = self.state
        self.health.set(HEALTH, False, reason)
        if previous == DOWN and reason == self.reason:
            return
        self.state = DOWN
        self.reason = reason
        self.since = self.clock.seconds()
        self.stats = {}
        if isinstance(error, MediaMTXUnauthorized):
            log.error("MediaMTX is unavailable: {reason}", reason=reason)
        else:
            log.warn("MediaMTX is unavailable: {reason}", reason=reason)
        if previous != DOWN:
            self._notify("down", reason)
            self._tell("down", {"reason": reason})

    def _came_up(self, info: dict) -> None:
        previous = self.state
        started = info.get("started") if isinstance(info, dict) else None
        version = info.get("version") if isinstance(info, dict) else None
        restarted = previous != UNKNOWN and started is not None and self.started is not None and started != self.started
        first = previous == UNKNOWN
        self.version = version or self.version
        old_started, self.started = self.started, started or self.started
        if previous == UP and not restarted:
            return
        self.state = UP
        self.reason = ""
        self.since = self.clock.seconds()
        self.health.set(HEALTH, True)
        if restarted:
            self.restarts += 1
            log.warn(
                "MediaMTX restarted (started {old} -> {new}): its API-made paths are gone",
                old=old_started,
                new=started,
            )
        if previous == DOWN:
            log.info("MediaMTX is available again ({version})", version=self.version or "version unknown")
            self._notify("up", "MediaMTX is available again")
        elif first:
            log.info(
                "MediaMTX {version} available at {url} (started {started})",
                version=self.version or "(version unknown)",
                url=self.api_url,
                started=self.started,
            )
        event = "restarted" if restarted else "up"
        self._tell(event, {"started": self.started, "first": first, "was_down": previous == DOWN})

    def _notify(self, status: str, message: str) -> None:
        try:
            self.publish("system_status_update", {"component": "mediamtx", "status": status, "message": message})
        except Exception:
            log.failure("Publishing the MediaMTX status change failed")

    def _tell(self, event: str, info: dict) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, info)
            except Exception:
                log.failure("MediaMTX monitor listener failed on {event}", event=event)
