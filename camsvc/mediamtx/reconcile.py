"""Make MediaMTX's paths match camsvc's desired state, and remember what is ours.

Desired state lives in camsvc: one path per CONNECTED camera, named by its
camera id (:func:`camsvc.mediamtx.desired.desired_path`), including the
recording fields set through :meth:`Reconciler.set_recording`.  MediaMTX
forgets API-made paths when it restarts, and anyone with API access can change
them, so :class:`Reconciler` compares and repairs:

* a **pass** lists ``/v3/config/paths/list`` (what MediaMTX actually has) and,
  per path, adds, patches (recording fields only, so viewers stay connected),
  replaces or deletes (:func:`~camsvc.mediamtx.desired.plan_action`);
* passes run on start (first contact), when MediaMTX comes back or restarted,
  on every camera added/removed/changed, and every ``reconcile_interval``;
  concurrent triggers coalesce into one follow-up pass;
* a pass that fails (MediaMTX unreachable, 5xx, 401) is retried with capped
  exponential backoff; a path MediaMTX refuses (400) is reported and logged
  once, and retried by the periodic pass.

Ownership.  camsvc never deletes or rewrites a path it does not own.  It owns
exactly the paths it created, recorded in :class:`OwnershipLedger`, a small
JSON file in ``storage.state_dir`` written *before* each add (so a crash cannot
leave an untracked camsvc path) and after each delete, together with the
MediaMTX ``started`` time it applies to.  So ownership survives a camsvc
restart, and is dropped when MediaMTX restarted (its API-made paths are gone:
a same-named path that exists afterwards was made by someone else).  A name
match alone is not enough: an operator's static ``camera0`` in mediamtx.yml
is left alone (reported as a conflict) unless it is already exactly what camsvc
would configure, in which case camsvc adopts it.

Every MediaMTX write happens under one lock and recomputes the desired state
at the moment it is sent, so a pass working from a listing never undoes a
:meth:`~Reconciler.set_recording` that happened meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredLock, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from camsvc.cameras.registry import DISCONNECTED, Camera
from camsvc.common.errors import InvalidState, MediaMTXUnavailable
from camsvc.common.fileio import atomic_write
from camsvc.mediamtx.client import (
    MediaMTXAPIError,
    MediaMTXBadRequest,
    MediaMTXError,
    MediaMTXNotFound,
)
from camsvc.mediamtx.desired import (
    ADD,
    DELETE,
    NOTHING,
    PATCH,
    REPLACE,
    desired_path,
    differences,
    plan_action,
)

log = Logger()

LEDGER_NAME = "mediamtx-paths.json"

#: Per-path states reported in get_status.
CONFIGURED = "configured"
PENDING = "pending"
FAILED = "error"
CONFLICT = "conflict"
NO_MODE = "no_video_mode"


class OwnershipLedger:
    """The MediaMTX paths camsvc created, persisted as JSON.

    ``{"version": 1, "mediamtx_started": "...", "paths": ["camera0", ...]}``.
    Write failures are logged; the in-memory set stays authoritative.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.names: set[str] = set()
        self.started: str | None = None
        if path:
            self._load()

    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:  # type: ignore[arg-type]
                doc = json.load(fh)
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            log.failure("Cannot read the MediaMTX path ledger {path}; starting empty", path=self.path)
            return
        if isinstance(doc, dict):
            self.names = {n for n in doc.get("paths", []) if isinstance(n, str)}
            started = doc.get("mediamtx_started")
            self.started = started if isinstance(started, str) else None

    def _save(self) -> None:
        if not self.path:
            return
        doc = {"version": 1, "mediamtx_started": self.started, "paths": sorted(self.names)}
        try:
            atomic_write(self.path, (json.dumps(doc, indent=1) + "\n").encode("utf-8"), mode=0o600, dir_mode=0o777)
        except OSError:
            log.failure("Cannot write the MediaMTX path ledger {path}", path=self.path)

    def owns(self, name: str) -> bool:
        return name in self.names

    def claim(self, name: str) -> None:
        if name not in self.names:
            self.names.add(name)
            self._save()

    def release(self, name: str) -> None:
        if name in self.names:
            self.names.discard(name)
            self._save()

    def mediamtx_started(self, started: str | None) -> None:
        """MediaMTX reports ``started``: if it differs from the ledger's, our paths died with it."""
        if started is None or started == self.started:
            return
        if self.names and self.started is not None:
            log.info(
                "MediaMTX restarted since the path ledger was written; forgetting {count} path(s)",
                count=len(self.names),
            )
            self.names.clear()
        self.started = started
        self._save()

    def forget_all(self) -> None:
        if self.names:
            self.names.clear()
            self._save()


class Reconciler(Service):
    """Keeps one MediaMTX path per connected camera.

    Collaborators: ``client`` (MediaMTX client), ``monitor``
    (:class:`~camsvc.mediamtx.monitor.Monitor`: availability and restart
    events), ``cameras`` (:class:`~camsvc.cameras.registry.CameraRegistry`, observed),
    ``config`` (the whole :class:`~camsvc.config.Config`), ``clock`` and
    ``ledger`` (:class:`OwnershipLedger`).
    """

    name = "mediamtx-reconciler"

    def __init__(
        self,
        client: Any,
        monitor: Any,
        cameras: Any,
        config: Any,
        clock: Any,
        ledger: OwnershipLedger,
        *,
        backoff_base: float = 0.5,
        backoff_cap: float | None = None,
        metrics: Any = None,
        stream_settings: Callable[[str], dict] | None = None,
    ) -> None:
        self.metrics = metrics
        #: camera id -> its stored stream settings (camsvc.cameras.settings).
        self.stream_settings = stream_settings or (lambda camera_id: {})
        self.client = client
        self.monitor = monitor
        self.cameras = cameras
        self.config = config
        self.clock = clock
        self.ledger = ledger
        self.interval = config.mediamtx.reconcile_interval
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap if backoff_cap is not None else min(30.0, self.interval)
        self.recording: dict[str, bool] = {}
        self.paths: dict[str, dict] = {}
        self.conflicts: dict[str, str] = {}
        self.failures = 0
        self.passes = 0
        self.last_pass: float | None = None
        self.last_duration: float | None = None
        self.last_error: str | None = None
        self._lock = DeferredLock()
        self._running: Deferred | None = None
        self._again = False
        self._waiters: list[Deferred] = []
        self._retry: Any = None
        self._kick: Any = None
        self._loop: LoopingCall | None = None
        self._logged: dict[str, str] = {}
        self._pass_listeners: list[Callable[[dict], None]] = []
        cameras.subscribe(self)
        monitor.subscribe(self._monitor_event)
        monitor.expected_paths = lambda: set(self.ledger.names)

    # -- service ---------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self._periodic)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: log.failure("MediaMTX reconcile loop stopped", f)
        )
        self.trigger("start")  # when the monitor already saw MediaMTX; else its "up" event does

    def stopService(self) -> Any:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        for call in (self._retry, self._kick):
            if call is not None and call.active():
                call.cancel()
        self._retry = self._kick = None
        running, self._running = self._running, None
        if running is not None and not running.called:
            running.cancel()
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if not d.called:
                d.callback(False)
        return None

    # -- desired state -----------------------------------------------------------------

    def desired(self, camera_id: str) -> dict | None:
        camera = self.cameras.get(camera_id)
        if camera is None:
            return None
        return desired_path(camera, self.config, self.recording.get(camera_id, False), self.stream_settings(camera_id))

    def desired_names(self) -> set[str]:
        return {c.camera_id for c in self.cameras.cameras() if self.desired(c.camera_id) is not None}

    #: Configuration keys that change the desired paths and are applied on reload (SIGHUP).
    RELOAD_KEYS = (
        "mediamtx.publish_command",
        "mediamtx.passthrough_command",
        "mediamtx.hardware_command",
        "mediamtx.passthrough",
        "recording.segment_duration",
    )

    def config_reloaded(self, old: Any, new: Any) -> None:
        """``app.on_reload`` listener: build paths from the new configuration and reconcile."""
        self.config = new
        self.trigger("configuration reloaded")

    # -- triggers ----------------------------------------------------------------------

    def camera_added(self, camera: Any) -> None:
        self.trigger(f"{camera.camera_id} added", camera.camera_id)

    def camera_removed(self, camera: Any) -> None:
        self.recording.pop(camera.camera_id, None)
        self.trigger(f"{camera.camera_id} removed", camera.camera_id)

    def camera_changed(self, camera: Any) -> None:
        self.trigger(f"{camera.camera_id} changed", camera.camera_id)

    def _monitor_event(self, event: str, info: dict) -> None:
        if event == "restarted":
            # Every API-made path died with the old process: none of what exists now is ours.
            self.ledger.forget_all()
            self.ledger.mediamtx_started(info.get("started"))
            self.trigger("MediaMTX restarted")
        elif event == "up":
            self.ledger.mediamtx_started(info.get("started"))
            self.trigger("MediaMTX available" if info.get("first") else "MediaMTX back")
        elif event == "paths_lost":
            # A configuration reload dropped them (``started`` did not change): they are
            # no longer ours to patch but to add again.
            for name in info.get("missing", ()):
                self.ledger.release(name)
            self.trigger("MediaMTX lost camsvc's paths (configuration reloaded)")

    def _periodic(self) -> None:
        if self.monitor.available:
            self.trigger("periodic")

    def trigger(self, why: str, camera_id: str | None = None) -> None:
        """Ask for a pass soon (coalesced; skipped while MediaMTX is down — its return triggers one)."""
        if not self.running or not self.monitor.available:
            return
        log.debug("Reconcile requested: {why}", why=why, **({"camera_id": camera_id} if camera_id else {}))
        if self._kick is None or not self._kick.active():
            self._kick = self.clock.callLater(0, self.reconcile)

    def reconcile(self) -> Deferred:
        """Run a pass now (or after the running one); fires with True when everything is configured."""
        d: Deferred = Deferred()
        self._waiters.append(d)
        if self._running is not None:
            self._again = True
        else:
            self._start_pass()
        return d

    # -- the pass --------------------------------------------------------------------------

    def _start_pass(self) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self._again = False
        waiters, self._waiters = self._waiters, []
        started = self.clock.seconds()
        d = Deferred.fromCoroutine(self._pass())
        self._running = d

        def finished(outcome: Any) -> None:
            current = self._running is d
            if current:
                self._running = None
                self.last_duration = self.clock.seconds() - started
                if self.metrics is not None:
                    self.metrics.reconcile(self.last_duration, outcome is True)
            for waiter in waiters:
                if not waiter.called:
                    waiter.callback(outcome is True)
            if current and self.running and (self._again or self._waiters):
                self._start_pass()

        def crashed(failure: Any) -> bool:
            if not failure.check(CancelledError):
                log.failure("MediaMTX reconcile pass failed unexpectedly", failure)
                self._schedule_retry("internal error")
            return False

        d.addErrback(crashed)
        d.addCallback(finished)

    async def _pass(self) -> bool:
        """One comparison of desired vs actual; True when every desired path is configured."""
        self.passes += 1
        self.last_pass = self.clock.seconds()
        if not self.monitor.available:
            return False
        try:
            actual = await self.client.list_path_configs()
        except MediaMTXError as exc:
            self._pass_failed(exc)
            return False
        transient: MediaMTXError | None = None
        names = sorted(self.desired_names() | self.ledger.names)
        for name in names:
            try:
                await self._apply(name, actual.get(name))
            except MediaMTXError as exc:
                if isinstance(exc, MediaMTXAPIError) and exc.status < 500 and exc.status != 401:
                    continue  # reported per path; the periodic pass retries
                transient = exc
                break
        self._forget_stale(actual)
        if transient is not None:
            self._pass_failed(transient)
            return False
        self.failures = 0
        self.last_error = None
        all_ok = all(p["state"] == CONFIGURED for p in self.paths.values())
        for listener in list(self._pass_listeners):
            listener(dict(self.paths))
        return all_ok

    def _forget_stale(self, actual: dict) -> None:
        keep = self.desired_names()
        for name in list(self.paths):
            if name not in keep:
                del self.paths[name]
        for name in list(self.conflicts):
            if name not in keep or name not in actual:
                self.conflicts.pop(name, None)

    async def _apply(self, name: str, have: dict | None) -> None:
        """Bring one path in line, under the write lock, with the desired state of *now*."""
        await self._lock.acquire()
        try:
            await self._apply_locked(name, have)
        finally:
            self._lock.release()

    async def _apply_locked(self, name: str, have: dict | None) -> None:
        want = self.desired(name)
        if not self.ledger.owns(name) and have is not None:
            if want is None:
                return  # someone else's path: never touched
            if differences(want, have):
                self._conflict(name, have)
                return
            log.info(
                "Adopting MediaMTX path {path}: it already holds camsvc's configuration", path=name, camera_id=name
            )
            self.ledger.claim(name)
        self.conflicts.pop(name, None)
        action, body = plan_action(want, have)
        if action == NOTHING:
            if want is None:
                self.ledger.release(name)
            else:
                self._set_state(name, CONFIGURED)
            return
        was_owned = self.ledger.owns(name)
        if action == ADD:
            self.ledger.claim(name)
        try:
            await self._send(action, name, body)
        except MediaMTXNotFound as exc:
            if action == DELETE:
                self.ledger.release(name)
                return
            if action in (PATCH, REPLACE):
                # The path vanished between the listing and now (MediaMTX restart or
                # someone deleted it): add it on the next pass.
                self._set_state(name, PENDING, f"path disappeared from MediaMTX ({exc.error})")
                self._again = True
                return
            self._path_error(name, action, exc)
            raise
        except MediaMTXBadRequest as exc:
            if action == ADD and exc.error == "path already exists":
                if not was_owned:
                    self.ledger.release(name)  # someone else made it meanwhile
                self._set_state(name, PENDING, "path appeared in MediaMTX meanwhile")
                self._again = True
                return
            self._path_error(name, action, exc)
            raise
        except MediaMTXError as exc:
            if want is not None:
                self._set_state(name, FAILED, exc.message)
            raise
        if action == DELETE:
            self.ledger.release(name)
            self.paths.pop(name, None)
        else:
            self._set_state(name, CONFIGURED)

    async def _send(self, action: str, name: str, body: dict | None) -> None:
        if action == ADD:
            await self.client.add_path(name, body)
        elif action == PATCH:
            await self.client.patch_path(name, body)
        elif action == REPLACE:
            await self.client.replace_path(name, body)
        elif action == DELETE:
            await self.client.delete_path(name)
        log.info("MediaMTX path {path}: {action} done", path=name, action=action, camera_id=name)
        self._logged.pop(name, None)

    def _set_state(self, name: str, state: str, error: str | None = None) -> None:
        entry = {"state": state, "since": self.clock.seconds()}
        previous = self.paths.get(name)
        if previous is not None and previous["state"] == state and previous.get("error") == error:
            return
        if error:
            entry["error"] = error
        self.paths[name] = entry

    def _path_error(self, name: str, action: str, exc: MediaMTXAPIError) -> None:
        message = f"MediaMTX refused to {action} path {name}: {exc.status} {exc.error}"
        self._set_state(name, FAILED, message)
        if self._logged.get(name) != message:
            self._logged[name] = message
            log.error("{message}", message=message, path=name, camera_id=name, status=exc.status, error=exc.error)

    def _conflict(self, name: str, have: dict) -> None:
        message = (
            f"MediaMTX already has a path {name} that camsvc did not create; leaving it alone "
            "(delete it in MediaMTX, or restart MediaMTX, to let camsvc configure the camera)"
        )
        self.conflicts[name] = message
        self._set_state(name, CONFLICT, message)
        if self._logged.get(name) != message:
            self._logged[name] = message
            log.warn("{message}", message=message, path=name, camera_id=name)

    def _pass_failed(self, exc: MediaMTXError) -> None:
        self.failures += 1
        self.last_error = exc.message
        self.monitor.report(exc)
        delay = self._schedule_retry(exc.message)
        level = log.warn if self.failures <= 3 or self.failures % 10 == 0 else log.debug
        level(
            "MediaMTX reconcile failed (attempt {attempt}): {error}; retrying in {delay:.1f}s",
            attempt=self.failures,
            error=exc.message,
            delay=delay,
        )

    def _schedule_retry(self, why: str) -> float:
        delay = min(self.backoff_cap, self.backoff_base * (2 ** max(0, self.failures - 1)))
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self.running:
            self._retry = self.clock.callLater(delay, self._retry_now)
        return delay

    def _retry_now(self) -> None:
        self._retry = None
        if self.monitor.available:
            self.reconcile()
        # else: the monitor's "up" event triggers the next pass.

    # -- recording ---------------------------------------------------------------------------

    def set_recording(self, camera_id: str, enabled: bool) -> Deferred:
        """Set ``record`` for the camera's path in desired state and in MediaMTX now.

        Fires with None once MediaMTX has it.  Errors: MediaMTXUnavailable
        (-32006) when MediaMTX is down or refuses; InvalidState (-32005) when
        enabling on a camera that has no path (not connected, no video mode).
        Failing to enable leaves the desired state off; disabling stays off
        in the desired state even when MediaMTX cannot be told now (the
        reconciler applies it when MediaMTX is back).
        """
        return Deferred.fromCoroutine(self._set_recording(camera_id, bool(enabled)))

    async def _set_recording(self, camera_id: str, enabled: bool) -> None:
        previous = self.recording.get(camera_id, False)
        if enabled and desired_path(self._camera_or_none(camera_id), self.config) is None:
            raise InvalidState(
                f"Camera {camera_id} has no MediaMTX path (not connected or no usable video mode)",
                data={"camera_id": camera_id},
            )
        self.recording[camera_id] = enabled
        try:
            self.monitor.check_available()
            await self._lock.acquire()
            try:
                await self._apply_recording(camera_id, enabled)
            finally:
                self._lock.release()
        except MediaMTXError as exc:
            if enabled:
                self.recording[camera_id] = previous
            raise self.monitor.unavailable(exc) from None
        except Exception:
            if enabled:
                self.recording[camera_id] = previous
            raise
        log.info("Recording on {camera_id} {state} in MediaMTX", camera_id=camera_id, state="on" if enabled else "off")

    def _camera_or_none(self, camera_id: str) -> Any:
        camera = self.cameras.get(camera_id)
        if camera is None:
            return Camera(camera_id=camera_id, device="", status=DISCONNECTED)
        return camera

    async def _apply_recording(self, camera_id: str, enabled: bool) -> None:
        want = self.desired(camera_id)
        if want is None:
            return  # nothing in MediaMTX to change; desired state already updated
        if not self.ledger.owns(camera_id):
            await self._lock_free_reconcile(camera_id)
            return
        body = {
            k: want[k] for k in ("record", "recordPath", "recordFormat", "recordSegmentDuration", "recordDeleteAfter")
        }
        try:
            await self.client.patch_path(camera_id, body)
        except MediaMTXNotFound:
            # Not there (MediaMTX restarted, not yet reconciled): create it with recording set.
            await self._lock_free_reconcile(camera_id)
            return
        self._set_state(camera_id, CONFIGURED)

    async def _lock_free_reconcile(self, camera_id: str) -> None:
        """Configure one path from scratch while already holding the write lock."""
        configs = await self.client.list_path_configs()
        await self._apply_locked(camera_id, configs.get(camera_id))
        state = self.paths.get(camera_id, {})
        if state.get("state") != CONFIGURED:
            reason = state.get("error") or f"path {camera_id} could not be configured"
            raise MediaMTXUnavailable(f"MediaMTX path {camera_id} is not usable: {reason}", data={"reason": reason})

    # -- status ----------------------------------------------------------------------------------

    def path_states(self) -> dict[str, dict]:
        """Per connected camera: ``{"state", "since", "error"?}``."""
        out = {name: dict(entry) for name, entry in self.paths.items()}
        for camera in self.cameras.connected():
            if self.desired(camera.camera_id) is None:
                out[camera.camera_id] = {
                    "state": NO_MODE,
                    "error": "the camera has no usable video mode (no format/size to publish)",
                }
            elif camera.camera_id not in out:
                out[camera.camera_id] = {"state": PENDING}
        return dict(sorted(out.items()))

    def status(self) -> dict:
        return {
            "paths": self.path_states(),
            "conflicts": dict(self.conflicts),
            "owned": sorted(self.ledger.names),
            "recording": sorted(n for n, on in self.recording.items() if on),
            "passes": self.passes,
            "last_pass": self.last_pass,
            "last_pass_duration": self.last_duration,
            "consecutive_failures": self.failures,
            "last_error": self.last_error,
            "retry_in": (self._retry.getTime() - self.clock.seconds())
            if self._retry is not None and self._retry.active()
            else None,
        }

    def when_idle(self) -> Deferred:
        """Fires when no pass is running (tests and benchmarks)."""
        if self._running is None:
            return succeed(None)
        d: Deferred = Deferred()
        self._running.addBoth(lambda r: (d.callback(None), r)[1])
        return d
