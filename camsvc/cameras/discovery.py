"""Camera discovery: udev on the reactor, stable ids, capability probes.

This module owns turning udev's view of ``video4linux`` into camera records in the
one :class:`~camsvc.cameras.registry.CameraRegistry`:

* **Enumeration, then a monitor.**  At start the udev monitor
  (:mod:`camsvc.cameras.udev`) is opened *first*, then ``video4linux`` is
  enumerated, then the monitor's fd is added to the reactor — so no event falls
  between the two.  :meth:`DiscoveryService.read_events` drains the monitor
  (bounded per call; the reactor calls again while the fd stays readable).
  ``ENOBUFS`` (the kernel dropped events: a storm larger than the socket buffer)
  discards what is still queued — it predates the loss and could be stale — and
  re-enumerates.
* **What is a camera** is :mod:`camsvc.cameras.selection`'s rule, confirmed by our
  own probe: a node the probe finds is not a capture node is withdrawn.
* **Identity.**  :mod:`camsvc.cameras.identity` maps the node's identity key to ``camera<N>``,
  persisted in ``storage.state_dir``.  Two present cameras with the same key (a
  serial shared by identical cameras) are told apart by port.
* **Announce at once, probe after.**  A new node is committed to the registry as
  CONNECTED straight from the udev event (the first ``camera_status_update`` never
  waits for anything slow: the id map is written afterwards, the probe starts
  afterwards).  Capabilities come from :class:`camsvc.cameras.probing.ProcessProber` (a child
  process with a timeout, see there why); when they arrive the record changes
  (resolution, fps); a failed probe makes it ERROR with the reason; a node that
  vanished mid-probe is retried once, then ERROR unless udev removed it meanwhile.
* **Flapping.**  Presence changes of one camera are rate-limited, leading edge first:
  the first change is committed at once; further changes within ``discovery.debounce``
  seconds of it are coalesced and the *current* udev state is committed when the
  window ends.  The registry therefore always converges to udev's final state (never
  a stale CONNECTED) and a flapping camera costs at most one notification and one
  probe per window.

Collaborators (all injected): the registry; the ``discovery`` config section; an
:class:`~camsvc.cameras.identity.IdentityStore`; the reactor (``IReactorFDSet``,
``IReactorTime``); ``health`` (condition ``"discovery"``, ok after the first
enumeration); ``udev_factory() -> backend`` (default :class:`PyudevBackend`;
``camsvc.testing.FakeUdev`` in unit tests); a prober (``probe(path) -> Deferred``);
optionally ``metrics`` (``udev_event(action)``, ``reenumeration(why)``).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from camsvc.cameras.identity import FILENAME, IdentityStore, node_key, port_key, serial_key, usable_serial
from camsvc.cameras.presence import Node, display_names, unique_paths
from camsvc.cameras.probing import MAX_CONCURRENT, ProbeFailed, ProcessProber
from camsvc.cameras.registry import CONNECTED, DISCONNECTED, ERROR, Camera
from camsvc.cameras.scheduling import PROBE_START_DELAY, VANISHED_RETRY_DELAY, ProbeState
from camsvc.cameras.selection import decide, node_number, udev_capture
from camsvc.cameras.udev import MAX_DISCARD, MAX_EVENTS_PER_READ, SUBSYSTEM, MonitorReader, PyudevBackend, UdevDevice
from camsvc.common.clocks import steady
from camsvc.common.lazy import lazy_import
from camsvc.common.writer import BackgroundWriter

if TYPE_CHECKING:
    from camsvc.cameras import v4l2
else:
    # The V4L2 binding (0.2 MiB of ctypes structures and code) loads with the first device's
    # QUERYCAP (the udev backend imports it then): a camera box with nothing plugged is spared it.
    v4l2 = lazy_import("camsvc.cameras.v4l2")

log = Logger()

#: Seconds between attempts to open udev when it is unavailable at start.
RETRY_DELAY = 10.0
#: Seconds between allocating a new id and writing the id map: after the notification
#: frame has left (Twisted sends queued data on the next poll, after due timed calls),
#: and once for a burst of new cameras.
FLUSH_DELAY = 0.05
#: Nodes whose QUERYCAP answer is remembered (oldest dropped first).
CAPS_CACHE_SIZE = 256

__all__ = [
    "FLUSH_DELAY",
    "PROBE_START_DELAY",
    "RETRY_DELAY",
    "VANISHED_RETRY_DELAY",
    "DiscoveryService",
    "UdevDevice",
    "setup",
]


class DiscoveryService(Service):
    """Keeps the camera registry equal to udev's capture nodes (see module docstring)."""

    name = "discovery"

    def __init__(
        self,
        registry: Any,
        config: Any,
        identity: IdentityStore,
        reactor: Any,
        *,
        health: Any = None,
        udev_factory: Callable[[], Any] | None = None,
        prober: Any = None,
        metrics: Any = None,
    ) -> None:
        self.metrics = metrics
        self.registry = registry
        self.config = config
        self.identity = identity
        self.reactor = reactor
        self.health = health
        self.udev_factory = udev_factory or PyudevBackend
        self.writer = BackgroundWriter(
            reactor, identity.path, mode=0o644, on_error=identity.write_failed, what="the camera id map"
        )
        self.prober = prober or ProcessProber(reactor, config.probe_timeout)
        self.udev: Any = None
        self.monitor: Any = None
        self.reader = MonitorReader(self)
        self._nodes: dict[str, Node] = {}  # sys_path -> node
        self._present: dict[str, Node] = {}  # camera_id -> node
        self._key_holders: dict[str, str] = {}  # key -> sys_path of the present node
        self._rejected: set[str] = set()  # sys_paths the probe found are not capture nodes
        self._probes: dict[str, ProbeState] = {}
        # Times in these three are on the monotonic clock (common.clocks.steady): a step of the
        # wall clock neither delays a probe by the step nor starts it early.
        self._probe_queue: dict[str, float] = {}  # camera_id -> when its probe may start
        self._probing = 0
        self._probe_call: Any = None
        self._last_change: dict[str, float] = {}  # camera_id -> time of its last presence change
        self._hold: dict[str, float] = {}  # camera_id -> no probe before (a flapping camera)
        self._names: dict[str, str] = {}  # camera_id -> display name (see presence.display_names)
        self._forget_timers: dict[str, Any] = {}  # DISCONNECTED camera_id -> its forget_after
        self._caps_cache: dict[str, tuple[tuple, Any]] = {}  # sys_path -> (udev identity, QUERYCAP)
        self._model_caps: dict[tuple, Any] = {}  # model_key -> QUERYCAP (bus_info blanked)
        self._pending_logs: list[tuple[str, dict]] = []
        self._path_memo: dict[str, tuple] = {}  # see presence.unique_paths
        self._log_call: Any = None
        self._flush_call: Any = None
        self._kills: dict[Deferred, Any] = {}  # probes of vanished nodes -> their pending kill
        self._retry_call: Any = None
        self.started = False
        self.stats = {
            "events": 0,
            "enumerations": 0,
            "overflows": 0,
            "read_errors": 0,
            "probes": 0,
            "probe_failures": 0,
            "probe_timeouts": 0,
            "coalesced": 0,
            "querycaps": 0,
        }
        self.last_error: str | None = None

    # -- lifecycle ----------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if not self.config.enabled:
            log.info("Camera discovery is disabled (discovery.enabled: false): no cameras")
            self._health(True)
            return
        self.identity.load()
        self._open()

    def _open(self) -> None:
        self._retry_call = None
        if not self.running:
            return
        try:
            self.udev = self.udev_factory()
            self.monitor = self.udev.monitor(self.config.receive_buffer_size)
            self._resync("start")
        except Exception as exc:
            self.last_error = f"udev unavailable: {exc}"
            log.failure("Cannot start udev camera discovery; retrying in {delay:g}s", delay=RETRY_DELAY)
            self._close_monitor()
            self._health(False, self.last_error)
            self._retry_call = self.reactor.callLater(RETRY_DELAY, self._open)
            return
        self.reactor.addReader(self.reader)
        self.started = True
        self.last_error = None
        log.info(
            "Camera discovery running: {connected} camera(s) present, watching udev {subsystem}",
            connected=len(self._present),
            subsystem=SUBSYSTEM,
        )
        self._health(True)

    def stopService(self) -> Any:
        super().stopService()
        if self.started:
            self.reactor.removeReader(self.reader)
        self.started = False
        self._close_monitor()
        for call in (self._retry_call, self._probe_call, self._log_call, *self._forget_timers.values()):
            if call is not None and call.active():
                call.cancel()
        self._emit_logs()
        self._retry_call = self._probe_call = None
        self._forget_timers.clear()
        kills, self._kills = self._kills, {}
        for d, call in kills.items():
            if call.active():
                call.cancel()
            d.cancel()
        self._probe_queue.clear()
        for ps in self._probes.values():
            if ps.retry is not None and ps.retry.active():
                ps.retry.cancel()
            if ps.running is not None:
                ps.running[1].cancel()
            self._wake(ps)
        if hasattr(self.prober, "kill_all"):
            self.prober.kill_all()
        self._flush()
        return self.writer.drain()  # stopped once the id map is on disk

    def _close_monitor(self) -> None:
        if self.monitor is not None:
            try:
                self.monitor.close()
            except Exception:
                log.failure("closing the udev monitor failed")
        self.monitor = None

    def _health(self, ok: bool, reason: str = "") -> None:
        if self.health is not None:
            self.health.set("discovery", ok, reason)

    # -- reading udev ---------------------------------------------------------------

    def read_events(self) -> None:
        """Drain the monitor (the reader's doRead)."""
        for _ in range(MAX_EVENTS_PER_READ):
            monitor = self.monitor
            if monitor is None:
                return
            try:
                device = monitor.receive()
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self._overflowed()
                    continue
                self.stats["read_errors"] += 1
                log.error("Reading the udev monitor failed: {error}", error=exc)
                return
            if device is None:
                return
            self.stats["events"] += 1
            if self.metrics is not None:
                self.metrics.udev_event(device.action)
            try:
                self.handle_event(device)
            except Exception:
                log.failure(
                    "Handling udev {action} of {sys_path} failed", action=device.action, sys_path=device.sys_path
                )

    def _overflowed(self) -> None:
        self.stats["overflows"] += 1
        log.warn(
            "udev events were lost (receive queue overflow, ENOBUFS): re-enumerating {subsystem}", subsystem=SUBSYSTEM
        )
        discarded = 0
        monitor = self.monitor
        while monitor is not None and discarded < MAX_DISCARD and monitor.pending():
            try:
                if monitor.receive() is None:
                    break
            except OSError:
                pass  # another overflow report: we are re-enumerating anyway
            discarded += 1
        try:
            self._resync("overflow")
        except Exception:
            log.failure("Re-enumerating {subsystem} after an overflow failed", subsystem=SUBSYSTEM)

    def _resync(self, why: str) -> None:
        """Make the present set equal to a fresh enumeration."""
        devices = self.udev.enumerate()
        self.stats["enumerations"] += 1
        if self.metrics is not None:
            self.metrics.reenumeration(why)
        found = [d for d in devices if udev_capture(d) is True and d.device_node]
        found.sort(key=lambda d: node_number(d.device_node))
        seen = {d.sys_path for d in found}
        for sys_path in list(self._nodes):
            if sys_path not in seen:
                self._node_gone(sys_path)
        for sys_path in list(self._rejected):
            if sys_path not in seen:
                self._rejected.discard(sys_path)
        for device in found:
            self._node_seen(device, resync=True)
        log.debug(
            "Enumerated {subsystem} ({why}): {count} capture node(s)", subsystem=SUBSYSTEM, why=why, count=len(found)
        )

    def handle_event(self, device: UdevDevice) -> None:
        action = device.action
        if action == "remove":
            self._node_gone(device.sys_path)
        elif action in ("unbind", "offline"):
            return
        else:
            if action == "move":
                old = device.properties.get("DEVPATH_OLD")
                devpath = device.properties.get("DEVPATH", "")
                if old and devpath and device.sys_path.endswith(devpath):
                    self._node_gone(device.sys_path[: -len(devpath)] + old)
            self._node_seen(device)

    # -- the present set ------------------------------------------------------------

    def _node_seen(self, device: UdevDevice, *, resync: bool = False) -> None:
        sys_path = device.sys_path
        if udev_capture(device) is not True or not device.device_node:
            if sys_path in self._nodes:
                log.info("{device} is no longer a capture node", device=device.describe())
                self._node_gone(sys_path)
            return
        if sys_path in self._rejected:
            if device.action != "add":
                return
            self._rejected.discard(sys_path)
        node = self._nodes.get(sys_path)
        if node is not None and device.action == "add":
            props, devnode, index = device.properties, device.device_node, device.index
            same = node.device.device_node == devnode and node.key in (
                serial_key(props, index),
                port_key(props, devnode, index),
                node_key(props, index, getattr(node.info, "bus_info", "") or "", sys_path),
                f"sys:{sys_path}",
            )
            if not same:
                self._node_gone(sys_path)  # an "add" without the "remove": another device on the path
                node = None
        if node is None:
            self._node_added(device)
            return
        node.device = device
        ps = self._probes[node.camera_id]
        if ps.done_for is node and ps.running is None and (ps.error is not None or device.action == "add"):
            ps.done_for = None  # probe again: an ERROR camera on change/re-enumeration, a re-"add"
            ps.retried = False
        self._refresh_present(node.camera_id, commit=True)

    def _querycap(self, device: UdevDevice) -> tuple[bool, Any]:
        """(still there, QUERYCAP or None) for a candidate node.

        Remembered per node and udev identity (node, card, ID_SERIAL, links): a camera
        replugged on the same port answers the same, and the ioctl is skipped (not
        under a port shared by several cameras: :meth:`_shared_port`).  Also
        remembered per USB model and node (:func:`model_key`): what QUERYCAP says
        (driver, card, capabilities) is the same for every node of one model, interface
        and node index under one running kernel, so a second camera of a model, or a
        camera moved to another port, skips the round trip too (the reused answer's
        ``bus_info`` is blanked: that one is per port).  A model never seen is asked."""
        ask = getattr(self.udev, "querycap", None)
        if ask is None:
            return True, None
        props = device.properties
        signature = (device.device_node, props.get("ID_V4L_PRODUCT"), props.get("ID_SERIAL"), props.get("DEVLINKS"))
        known = self._caps_cache.get(device.sys_path)
        if known is not None and known[0] == signature and not self._shared_port(device):
            return True, known[1]
        model = model_key(device)
        info = self._model_caps.get(model) if model is not None else None
        if info is not None:
            self._remember_caps(device.sys_path, signature, info)
            return True, info
        try:
            self.stats["querycaps"] += 1
            info = ask(device.device_node)
            self._remember_caps(device.sys_path, signature, info)
            if model is not None and info is not None:
                if len(self._model_caps) >= CAPS_CACHE_SIZE:
                    del self._model_caps[next(iter(self._model_caps))]
                self._model_caps[model] = replace(info, bus_info="") if isinstance(info, v4l2.DeviceInfo) else info
            return True, info
        except v4l2.ProbeError as exc:
            if exc.reason == "vanished":
                log.debug("{device} vanished before QUERYCAP", device=device.describe())
                return False, None
            log.info("QUERYCAP of {device} failed ({error}); going by udev", device=device.describe(), error=exc)
        except Exception:
            log.failure("QUERYCAP of {device} failed; going by udev", device=device.describe())
        return True, None

    def _shared_port(self, device: UdevDevice) -> bool:
        """Several cameras under this node's port (``vivid n_devs=2``): udev's view of them
        is the same, only QUERYCAP's ``bus_info`` tells which one is on this node now (a
        held node shifts the kernel's minors: one may come back on the other's old node),
        so their answers are never reused."""
        return port_key(device.properties, device.device_node, device.index) in self.identity.shared_ports

    def _remember_caps(self, sys_path: str, signature: tuple, info: Any) -> None:
        if len(self._caps_cache) >= CAPS_CACHE_SIZE:
            del self._caps_cache[next(iter(self._caps_cache))]
        self._caps_cache[sys_path] = (signature, info)

    def _node_added(self, device: UdevDevice) -> None:
        there, info = self._querycap(device)
        if not there:
            return
        ok, why = decide(device, info, include=self.config.include, exclude=self.config.exclude)
        if not ok:
            self._rejected.add(device.sys_path)
            log.info("{device} is not a camera: {why}", device=device.describe(), why=why)
            return
        key = self._key_for(device, info)
        camera_id, new = self.identity.camera_id(key, device.name)
        if new:
            self._schedule_flush()
        node = Node(device, camera_id, key, info)
        self._nodes[device.sys_path] = node
        self._present[camera_id] = node
        self._key_holders[key] = device.sys_path
        ps = self._probes.get(camera_id)
        if ps is None:
            ps = self._probes[camera_id] = ProbeState()
        ps.error = None
        ps.retried = False
        if info is not None and info.card:
            ps.card = info.card
        self._refresh_present(camera_id, commit=True)
        self._log_after_frame(
            "Camera {camera_id} present at {device} ({name}; {key}{new})",
            camera_id=camera_id,
            device=device.device_node,
            name=device.name,
            key=key,
            new=", new id" if new else "",
        )

    def _key_for(self, device: UdevDevice, info: Any = None) -> str:
        """The identity key of a new node: its serial only while that tells cameras apart;
        else its port; several cameras under one port by port and bus (:meth:`_node_key`)."""
        props, devnode, index, sys_path = device.properties, device.device_node, device.index, device.sys_path
        port = port_key(props, devnode, index)
        serial = usable_serial(props)
        if serial is not None and serial not in self.identity.shared:
            key = serial_key(props, index)
            holder = self._key_holders.get(key) if key is not None else None
            if key is not None and holder is None and self.identity.get(port) is not None:
                # a map from before this rule: the camera was told apart by port already
                self.identity.mark_shared(serial)
                self._schedule_flush()
            elif key is not None and (holder is None or holder == sys_path):
                return key
            elif key is not None:
                self._unshare(serial, key, holder)
        if port in self.identity.shared_ports:
            return self._node_key(device, info)
        holder = self._key_holders.get(port)
        if holder is not None and holder != sys_path:
            self._unshare_port(port, holder)
            return self._node_key(device, info)
        legacy = serial_key(props, index)
        if (
            legacy is not None
            and self.identity.get(port) is None
            and self.identity.get(legacy) is not None
            and legacy not in self._key_holders
        ):
            # migrate: a placeholder/shared serial key of an older map becomes the port key
            camera_id = self.identity.rekey(legacy, port)
            self._schedule_flush()
            log.info(
                "Camera {camera_id}: identity {old} becomes {new} (the serial does not identify it)",
                camera_id=camera_id,
                old=legacy,
                new=port,
            )
        return port

    def _free_node_key(self, device: UdevDevice, info: Any) -> str:
        """:func:`node_key` unless another present node holds it (QUERYCAP told them
        apart by no ``bus_info``): then the sysfs path."""
        key = node_key(device.properties, device.index, getattr(info, "bus_info", "") or "", device.sys_path)
        holder = self._key_holders.get(key)
        if holder is not None and holder != device.sys_path:
            return f"sys:{device.sys_path}"
        return key

    def _node_key(self, device: UdevDevice, info: Any) -> str:
        """The key of a node under a port shared by several cameras; an older map's
        ``sys:<sysfs path>`` entry of this very node moves to it (its id was right)."""
        key = self._free_node_key(device, info)
        legacy = f"sys:{device.sys_path}"
        if (
            key != legacy
            and self.identity.get(key) is None
            and self.identity.get(legacy) is not None
            and legacy not in self._key_holders
        ):
            camera_id = self.identity.rekey(legacy, key)
            self._schedule_flush()
            log.info(
                "Camera {camera_id}: identity {old} becomes {new} (no node number in it)",
                camera_id=camera_id,
                old=legacy,
                new=key,
            )
        return key

    def _unshare(self, serial: str, key: str, holder: str) -> None:
        """Two present cameras report ``serial``: from now on (and across restarts) it
        identifies neither; the one that had it keeps its id under its port key."""
        self.identity.mark_shared(serial)
        other = self._nodes[holder]
        new = port_key(other.device.properties, other.device.device_node, other.device.index)
        if new in self._key_holders:
            new = f"sys:{holder}"
        self.identity.rekey(key, new)
        del self._key_holders[key]
        self._key_holders[new] = holder
        other.key = new
        self._schedule_flush()
        log.warn(
            "Serial number {serial} is reported by two cameras at once: identifying both by port "
            "({camera_id} keeps its id as {new})",
            serial=serial,
            camera_id=other.camera_id,
            new=new,
        )
        self._commit(other.camera_id)

    def _unshare_port(self, port: str, holder: str) -> None:
        """Two present nodes have the same port key (several cameras under one platform
        device): from now on each is keyed by port and QUERYCAP bus_info
        (:func:`~camsvc.cameras.identity.node_key`), in any plug order; the one that had
        the port key keeps its id."""
        self.identity.mark_port_shared(port)
        other = self._nodes[holder]
        new = self._free_node_key(other.device, other.info)
        self.identity.rekey(port, new)
        del self._key_holders[port]
        self._key_holders[new] = holder
        other.key = new
        self._schedule_flush()
        log.warn(
            "{port} is the port of two cameras at once: identifying them by node ({camera_id} keeps its id as {new})",
            port=port,
            camera_id=other.camera_id,
            new=new,
        )
        self._commit(other.camera_id)

    def _node_gone(self, sys_path: str) -> None:
        self._rejected.discard(sys_path)
        node = self._nodes.pop(sys_path, None)
        if node is None:
            return
        camera_id = node.camera_id
        if self._present.get(camera_id) is node:
            del self._present[camera_id]
        if self._key_holders.get(node.key) == sys_path:
            del self._key_holders[node.key]
        ps = self._probes[camera_id]
        self._probe_queue.pop(camera_id, None)
        if ps.retry is not None and ps.retry.active():
            ps.retry.cancel()
        ps.retry = None
        moot = ps.running[1] if ps.running is not None and ps.running[0] is node else None
        self._wake(ps)
        self._commit(camera_id)
        self._refresh_present(camera_id)
        self._log_after_frame(
            "Camera {camera_id} gone from {device}", camera_id=camera_id, device=node.device.device_node
        )
        if moot is not None:
            # kill the probe of the vanished node once the notification has left (a kill
            # in this reactor turn would hold the frame up); its outcome is ignored anyway
            self._kills[moot] = self.reactor.callLater(PROBE_START_DELAY, self._kill_probe, moot)

    def _log_after_frame(self, fmt: str, **fields: Any) -> None:
        """Log at info once the notification frame has left (formatting and writing a
        log line in the event's reactor turn would hold the frame up)."""
        self._pending_logs.append((fmt, fields))
        if self._log_call is None or not self._log_call.active():
            self._log_call = self.reactor.callLater(PROBE_START_DELAY, self._emit_logs)

    def _emit_logs(self) -> None:
        self._log_call = None
        pending, self._pending_logs = self._pending_logs, []
        for fmt, fields in pending:
            log.info(fmt, **fields)

    def _refresh_present(self, changed: str, *, commit: bool = False) -> None:
        """Recompute every present camera's device path and name (they depend on the
        others: shared link names, shared names); commit the *other* cameras whose
        path or name changed.  With ``commit`` ``changed`` is committed first, before
        the others (its notification is the one a client waits for); without it the
        caller commits ``changed`` (it did so already)."""
        nodes = list(self._present.values())
        resolve = getattr(self.udev, "resolve_link", None) or (lambda link: None)
        paths = unique_paths(nodes, resolve, self._path_memo)
        names = display_names(nodes, self._base_name)
        stale = []
        for node in nodes:
            path, name = paths[node.camera_id], names[node.camera_id]
            if (path, name) != (node.path, self._names.get(node.camera_id)) and node.camera_id != changed:
                stale.append(node.camera_id)
            node.path = path
            self._names[node.camera_id] = name
        if commit:
            self._commit(changed)
        for camera_id in stale:
            self._commit(camera_id)

    def _base_name(self, node: Node) -> str:
        device = node.device
        return device.product or self._probes[node.camera_id].card or device.name

    # -- committing to the registry ---------------------------------------------------

    def _record(self, camera_id: str) -> Camera | None:
        node = self._present.get(camera_id)
        ps = self._probes.get(camera_id) or ProbeState()
        if node is None:
            previous = self.registry.get(camera_id)
            if previous is None:
                return None
            if previous.status == DISCONNECTED:
                return previous
            return replace(previous, status=DISCONNECTED, error=None, last_seen=self.reactor.seconds())
        device = node.device
        return Camera(
            camera_id=camera_id,
            device=device.device_node or "",
            status=ERROR if ps.error else CONNECTED,
            name=self._names.get(camera_id) or self._base_name(node),
            key=node.key,
            links=device.links,
            capabilities=ps.caps,
            default=ps.default,
            error=ps.error,
            path=node.path or device.device_node or "",
        )

    def _commit(self, camera_id: str) -> None:
        """Put the current udev state of ``camera_id`` into the registry, at once: a
        presence change is never held back (only the probe it causes is, see
        :meth:`_want_probe`)."""
        desired = self._record(camera_id)
        if desired is None:
            return
        current = self.registry.get(camera_id)
        present = desired.status != DISCONNECTED
        if current is None or (current.status != DISCONNECTED) != present:
            self._presence_changed(camera_id, present)
        self.registry.put(desired)
        if present:
            self._want_probe(camera_id)

    def _presence_changed(self, camera_id: str, present: bool) -> None:
        now = steady(self.reactor)
        last = self._last_change.get(camera_id)
        self._last_change[camera_id] = now
        if last is not None and now - last < self.config.debounce:
            # flapping: the probe (and what follows from it) waits until it settles
            self._hold[camera_id] = now + self.config.debounce
            self.stats["coalesced"] += 1
        timer = self._forget_timers.pop(camera_id, None)
        if timer is not None and timer.active():
            timer.cancel()
        forget_after = self.config.forget_after
        if not present and forget_after > 0 and self.running:
            self._forget_timers[camera_id] = self.reactor.callLater(forget_after, self._forget_due, camera_id)

    # -- forgetting disconnected cameras --------------------------------------------

    def _forget_due(self, camera_id: str) -> None:
        self._forget_timers.pop(camera_id, None)
        try:
            self.forget(camera_id, why=f"disconnected for {self.config.forget_after:g} s")
        except Exception:
            log.failure("Forgetting camera {camera_id} failed", camera_id=camera_id)

    def forget(self, camera_id: str, *, why: str = "forget_camera") -> bool:
        """Drop a DISCONNECTED camera's record and per-camera state (its id mapping is
        kept: if it comes back it gets the same id).  False when it is present or unknown."""
        if camera_id in self._present:
            return False
        camera = self.registry.get(camera_id)
        if camera is None or camera.status != DISCONNECTED:
            return False
        timer = self._forget_timers.pop(camera_id, None)
        if timer is not None and timer.active():
            timer.cancel()
        ps = self._probes.pop(camera_id, None)
        if ps is not None:
            if ps.retry is not None and ps.retry.active():
                ps.retry.cancel()
            self._wake(ps)
        self._probe_queue.pop(camera_id, None)
        self._last_change.pop(camera_id, None)
        self._hold.pop(camera_id, None)
        self._names.pop(camera_id, None)
        self.registry.forget(camera_id)
        log.info("Camera {camera_id} forgotten ({why})", camera_id=camera_id, why=why)
        return True

    # -- probes ---------------------------------------------------------------------

    def _want_probe(self, camera_id: str) -> None:
        node = self._present.get(camera_id)
        ps = self._probes[camera_id]
        if node is None or ps.done_for is node:
            return
        if ps.running is not None and ps.running[0] is node:
            return
        if ps.retry is not None and ps.retry.active():
            return
        now = steady(self.reactor)
        due = max(now + PROBE_START_DELAY, self._hold.get(camera_id, 0.0))
        self._probe_queue[camera_id] = max(due, self._probe_queue.get(camera_id, 0.0))
        self._schedule_probes()

    def _schedule_probes(self) -> None:
        if not self._probe_queue or not self.running or self._probing >= MAX_CONCURRENT:
            return
        due = min(self._probe_queue.values())
        delay = max(0.0, due - steady(self.reactor))
        call = self._probe_call
        if call is not None and call.active():
            if call.getTime() <= self.reactor.seconds() + delay:
                return
            call.cancel()
        self._probe_call = self.reactor.callLater(delay, self._start_probes)

    def _kill_probe(self, d: Deferred) -> None:
        self._kills.pop(d, None)
        d.cancel()

    def _start_probes(self) -> None:
        self._probe_call = None
        now = steady(self.reactor)
        for camera_id, due in list(self._probe_queue.items()):
            if self._probing >= MAX_CONCURRENT or not self.running:
                break
            if due > now:
                continue
            del self._probe_queue[camera_id]
            node = self._present.get(camera_id)
            ps = self._probes.get(camera_id)
            if node is None or ps is None or ps.done_for is node:
                continue
            if ps.running is not None:
                ps.running[1].cancel()  # a probe of an older node of this camera
            self.stats["probes"] += 1
            self._probing += 1
            started = steady(self.reactor)
            try:
                d = self.prober.probe(node.device.device_node)  # the node udev named: this camera's
            except Exception as exc:
                log.failure("Starting the capability probe of {camera_id} failed", camera_id=camera_id)
                d = _failed(ProbeFailed("error", f"cannot start the probe: {exc}"))
            ps.running = (node, d)
            d.addBoth(self._probe_done, camera_id, node, started)
            d.addErrback(
                lambda f, camera_id=camera_id: log.failure(
                    "Handling the probe result of {camera_id} failed", f, camera_id=camera_id
                )
            )
        self._schedule_probes()

    def _probe_done(self, outcome: Any, camera_id: str, node: Node, started: float) -> None:
        self._probing -= 1
        ps = self._probes.get(camera_id) or ProbeState()
        if ps.running is not None and ps.running[0] is node:
            ps.running = None
        try:
            if isinstance(outcome, Failure) and outcome.check(CancelledError):
                return
            if self._present.get(camera_id) is not node or not self.running:
                return
            self._apply_probe(outcome, camera_id, node, steady(self.reactor) - started)
        finally:
            if ps.running is None and not (ps.retry is not None and ps.retry.active()):
                self._wake(ps)
            self._schedule_probes()

    def _apply_probe(self, outcome: Any, camera_id: str, node: Node, elapsed: float) -> None:
        ps = self._probes[camera_id]
        devnode = node.device.device_node
        if not isinstance(outcome, Failure):
            ps.caps = {k: outcome.get(k) for k in ("driver", "card", "bus_info", "formats")}
            ps.default = outcome.get("default")
            ps.card = str(outcome.get("card") or "")
            ps.error = None
            ps.done_for = node
            default = ps.default or {}
            log.info(
                "Camera {camera_id} ({device}): {formats} format(s), default {pixfmt} {width}x{height}@{fps} "
                "(probed in {ms:.0f} ms)",
                camera_id=camera_id,
                device=devnode,
                formats=len(ps.caps["formats"] or ()),
                pixfmt=default.get("format", "-"),
                width=default.get("width", 0),
                height=default.get("height", 0),
                fps=default.get("fps", 0),
                ms=elapsed * 1000,
            )
            self._commit(camera_id)
            return
        self.stats["probe_failures"] += 1
        exc = outcome.value
        if not isinstance(exc, ProbeFailed):
            log.failure(
                "Capability probe of {device} failed unexpectedly", outcome, device=devnode, camera_id=camera_id
            )
            exc = ProbeFailed("error", f"capability probe failed: {exc}")
        if exc.reason == "not_capture":
            log.warn(
                "{device} is not a video capture node after all ({message}); ignoring it",
                device=devnode,
                message=exc.message,
                camera_id=camera_id,
            )
            self._reject(node)
            return
        if exc.reason == "vanished" and not ps.retried:
            ps.retried = True
            log.info(
                "{device} vanished during its capability probe; checking again", device=devnode, camera_id=camera_id
            )
            ps.retry = self.reactor.callLater(max(VANISHED_RETRY_DELAY, self.config.debounce), self._retry, camera_id)
            return
        if exc.reason == "timeout":
            self.stats["probe_timeouts"] += 1
        ps.error = exc.message
        ps.done_for = node
        log.warn(
            "Camera {camera_id} ({device}) is in ERROR: {error}", camera_id=camera_id, device=devnode, error=exc.message
        )
        self._commit(camera_id)

    def _retry(self, camera_id: str) -> None:
        ps = self._probes.get(camera_id)
        if ps is None:
            return
        ps.retry = None
        if camera_id in self._present:
            self._want_probe(camera_id)
        else:
            self._wake(ps)

    def _reject(self, node: Node) -> None:
        sys_path = node.device.sys_path
        camera_id = node.camera_id
        self._nodes.pop(sys_path, None)
        if self._present.get(camera_id) is node:
            del self._present[camera_id]
        if self._key_holders.get(node.key) == sys_path:
            del self._key_holders[node.key]
        self._rejected.add(sys_path)
        ps = self._probes[camera_id]
        if ps.caps is None:
            self.registry.discard(camera_id)  # never was a camera: no DISCONNECTED ghost
        else:
            self._commit(camera_id)
        self._refresh_present(camera_id)

    def _wake(self, ps: ProbeState) -> None:
        waiters, ps.waiters = ps.waiters, []
        for d in waiters:
            d.callback(None)

    def when_probed(self, camera_id: str) -> Deferred | None:
        """A Deferred firing (with None) when the capability probe pending for the
        present node of ``camera_id`` has an outcome; None when there is none pending."""
        node = self._present.get(camera_id)
        ps = self._probes.get(camera_id)
        if node is None or ps is None:
            return None
        pending = (
            camera_id in self._probe_queue
            or (ps.running is not None and ps.running[0] is node)
            or (ps.retry is not None and ps.retry.active())
        )
        if not pending:
            return None
        d: Deferred = Deferred()
        ps.waiters.append(d)
        return d

    # -- identity persistence -------------------------------------------------------

    def _schedule_flush(self) -> None:
        if self._flush_call is None or not self._flush_call.active():
            self._flush_call = self.reactor.callLater(FLUSH_DELAY, self._flush)

    def _flush(self) -> None:
        """Hand the changed id map to the writer thread (the reactor never waits on fsync)."""
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        if not self.identity.loaded:
            return
        data = self.identity.pending_write()
        if data is not None:
            self.writer.write(data)

    # -- status -----------------------------------------------------------------------

    def status(self) -> dict:
        cameras = self.registry.cameras()
        return {
            "enabled": bool(self.config.enabled),
            "running": self.started,
            "error": self.last_error,
            "cameras": len(cameras),
            "connected": sum(1 for c in cameras if c.status == CONNECTED),
            "errors": sum(1 for c in cameras if c.status == ERROR),
            "known_ids": len(self.identity),
            "probes_running": self._probing,
            "probes_queued": len(self._probe_queue),
            **self.stats,
        }


def model_key(device: UdevDevice) -> tuple | None:
    """What makes two nodes answer QUERYCAP alike: USB vendor, product and revision,
    interface, node index, udev's card name and capability list; None for a node that
    is not a USB interface's (platform, PCI, virtual nodes are asked per node)."""
    props = device.properties
    vendor, product, interface = props.get("ID_VENDOR_ID"), props.get("ID_MODEL_ID"), props.get("ID_USB_INTERFACE_NUM")
    if not vendor or not product or not interface:
        return None
    return (
        vendor,
        product,
        props.get("ID_REVISION", ""),
        interface,
        device.index,
        props.get("ID_V4L_PRODUCT", ""),
        props.get("ID_V4L_CAPABILITIES", ""),
    )


def _failed(exc: Exception) -> Deferred:
    d: Deferred = Deferred()
    d.errback(exc)
    return d


def setup(app: Any) -> DiscoveryService:
    """Component entry point: the discovery service, its readiness and status (kept as ``app.discovery``)."""
    config = app.config.discovery
    app.health.require("discovery")
    identity = IdentityStore(os.path.join(app.config.storage.state_dir, FILENAME))
    service = DiscoveryService(
        app.cameras,
        config,
        identity,
        app.reactor,
        health=app.health,
        metrics=app.metrics,
    )
    service.setServiceParent(app.service)

    def reloaded(old: Any, new: Any) -> None:
        service.config = new.discovery
        if isinstance(service.prober, ProcessProber):
            service.prober.timeout = new.discovery.probe_timeout

    # enabled and receive_buffer_size take a restart (reported as such by the reloader)
    app.on_reload(reloaded, ("discovery.debounce", "discovery.probe_timeout"))
    app.status_providers["discovery"] = service.status
    return service
