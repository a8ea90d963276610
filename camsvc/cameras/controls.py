"""Camera controls: enumeration, validation, the order auto/manual pairs need, apply, watch.

This module owns what camsvc does with V4L2 controls (the ioctls themselves are
:mod:`camsvc.cameras.v4l2_controls`):

* :class:`ControlDevice` — one open ``/dev/videoN`` (the camera's actual node) used for
  control ioctls only; it never streams, so it coexists with the publisher's ffmpeg;
* :func:`validate` — a client's ``{name or id: value}`` checked against type, range,
  step and menu (:class:`~camsvc.common.errors.InvalidParams` naming the control and what
  is allowed; read-only/disabled/unsupported -32602, inactive/grabbed -32005);
* :func:`stages` — the order that works for automatic/manual pairs (:data:`PAIRS`):
  an automatic control switched to manual goes first, then the manual values, and an
  automatic control switched back to automatic goes last (after the manual values were
  stored while still active);
* :class:`CameraControls` — the component: describe, set, reset, re-apply the stored
  values when a camera is plugged in (before its stream can start: it runs inside the
  registry's ``camera_added``, ahead of the MediaMTX observer, and MediaMTX starts the
  publisher on demand only), and a watch that polls values so a change made by anyone
  (``v4l2-ctl``, another program) is published as ``camera_controls_update``.

**Blocking.** Control ioctls run on the reactor thread, on an fd opened once per camera.
They are syscalls that do not sleep on streaming: vivid answers in microseconds, a UVC
camera with one USB control transfer per value (1-5 ms; the driver's own timeout bounds
a hung device).  A child process per call would cost more than the 50 ms budget
(Python start-up), and the house rules exclude threads.  Every batch is timed; one that
blocks longer than :data:`BLOCK_WARN` seconds is logged with the camera id.  Figures:
``bench/controls.py``, docs/performance.md.

Collaborators: the camera registry (``get``/``resolve``), :class:`camsvc.cameras.settings.CameraSettings`
(stored values), ``clock`` (watch), ``publish(method, params)`` (notifications), and
``open_device(path) -> ControlDevice`` (tests give a fake-ioctl device).
"""

from __future__ import annotations

import errno
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from camsvc.cameras import v4l2_controls as vc
from camsvc.cameras.registry import CONNECTED, Camera
from camsvc.common.errors import InvalidParams, InvalidState

log = Logger()

#: A control batch that keeps the reactor longer than this (seconds) is logged.
BLOCK_WARN = 0.05
#: Most controls one set_camera_controls may name.
MAX_PER_CALL = 256

_VANISHED = frozenset({errno.ENODEV, errno.ENOENT, errno.ENXIO, errno.EIO})

# Control ids (linux/v4l2-controls.h).
CID_BRIGHTNESS = 0x00980900
CID_HUE = 0x00980903
CID_AUTO_WHITE_BALANCE = 0x0098090C
CID_RED_BALANCE = 0x0098090E
CID_BLUE_BALANCE = 0x0098090F
CID_EXPOSURE = 0x00980911
CID_AUTOGAIN = 0x00980912
CID_GAIN = 0x00980913
CID_HUE_AUTO = 0x00980919
CID_WHITE_BALANCE_TEMPERATURE = 0x0098091A
CID_AUTOBRIGHTNESS = 0x00980920
CID_EXPOSURE_AUTO = 0x009A0901
CID_EXPOSURE_ABSOLUTE = 0x009A0902
CID_FOCUS_ABSOLUTE = 0x009A090A
CID_FOCUS_RELATIVE = 0x009A090B
CID_FOCUS_AUTO = 0x009A090C
CID_IRIS_ABSOLUTE = 0x009A0911
CID_AUTO_N_PRESET_WHITE_BALANCE = 0x009A0914
CID_ISO_SENSITIVITY = 0x009A0917
CID_ISO_SENSITIVITY_AUTO = 0x009A0918

_WB_MANUAL = (CID_WHITE_BALANCE_TEMPERATURE, CID_RED_BALANCE, CID_BLUE_BALANCE)

#: Automatic control -> (the manual controls it makes inactive, its "automatic" test).
#: ``auto_exposure`` is a menu: 0 is automatic; manual, shutter- and aperture-priority
#: make exposure (or iris) writable.  The white-balance preset menu's 0 is "manual".
PAIRS: dict[int, tuple[tuple[int, ...], Callable[[int], bool]]] = {
    CID_EXPOSURE_AUTO: ((CID_EXPOSURE_ABSOLUTE, CID_EXPOSURE, CID_IRIS_ABSOLUTE), lambda v: v == 0),
    CID_AUTOGAIN: ((CID_GAIN, CID_EXPOSURE), lambda v: v != 0),
    CID_AUTO_WHITE_BALANCE: (_WB_MANUAL, lambda v: v != 0),
    CID_AUTO_N_PRESET_WHITE_BALANCE: (_WB_MANUAL, lambda v: v != 0),
    CID_FOCUS_AUTO: ((CID_FOCUS_ABSOLUTE, CID_FOCUS_RELATIVE), lambda v: v != 0),
    CID_HUE_AUTO: ((CID_HUE,), lambda v: v != 0),
    CID_AUTOBRIGHTNESS: ((CID_BRIGHTNESS,), lambda v: v != 0),
    CID_ISO_SENSITIVITY_AUTO: ((CID_ISO_SENSITIVITY,), lambda v: v != 0),
}
_MANUAL = {m for manuals, _ in PAIRS.values() for m in manuals}


class ControlDevice:
    """An open capture node for control ioctls (``O_RDWR | O_NONBLOCK``, never streamed)."""

    def __init__(
        self,
        path: str,
        *,
        ioctl: vc.IoctlFunc = vc._default_ioctl,
        opener: Callable[[str, int], int] = os.open,
        closer: Callable[[int], None] = os.close,
    ) -> None:
        self.path = path
        self.ioctl = ioctl
        self._closer = closer
        self._menus: vc.MenuCache = {}
        self.fd = opener(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)

    def controls(self) -> list[vc.ControlInfo]:
        return vc.enumerate_controls(self.fd, ioctl=self.ioctl, menus=self._menus)

    def query(self, control_id: int) -> vc.ControlInfo | None:
        return vc.query_control(self.fd, control_id, ioctl=self.ioctl, menus=self._menus)

    def values(self, controls: Iterable[vc.ControlInfo]) -> dict[int, int]:
        return vc.get_values(self.fd, controls, ioctl=self.ioctl)

    def set(self, values: list[tuple[vc.ControlInfo, int]]) -> None:
        vc.set_values(self.fd, values, ioctl=self.ioctl)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            try:
                self._closer(fd)
            except OSError:
                pass  # a vanished node: nothing left to release


# --- validation ------------------------------------------------------------------------


def lookup(controls: list[vc.ControlInfo], key: Any) -> vc.ControlInfo | None:
    """A control by name (``brightness``), id (``9963776``) or hex id (``"0x00980900"``)."""
    for c in controls:
        if key == c.name:
            return c
    cid = None
    if isinstance(key, int) and not isinstance(key, bool):
        cid = key
    elif isinstance(key, str):
        try:
            cid = int(key, 0)
        except ValueError:
            cid = None
    if cid is not None:
        for c in controls:
            if c.id == cid:
                return c
    return None


def _menu_choice(control: vc.ControlInfo, value: Any) -> int | None:
    if isinstance(value, str):
        want = vc.control_name(value)
        names = [(item.index, vc.control_name(item.name or str(item.value))) for item in control.menu]
        exact = [i for i, n in names if n == want]
        if exact:
            return exact[0]
        prefix = [i for i, n in names if n.startswith(want + "_")]
        if len(prefix) == 1:
            return prefix[0]
        return None
    if isinstance(value, int) and not isinstance(value, bool) and control.menu_index(value) is not None:
        return value
    return None


def allowed(control: vc.ControlInfo) -> dict:
    """What ``control`` accepts, for error data and documentation."""
    if control.type in (vc.TYPE_MENU, vc.TYPE_INTEGER_MENU):
        return {"type": control.type_name, "menu": [m.to_dict() for m in control.menu]}
    if control.type == vc.TYPE_BOOLEAN:
        return {"type": "boolean"}
    if control.type == vc.TYPE_BUTTON:
        return {"type": "button", "values": [True]}
    if control.type == vc.TYPE_BITMASK:
        return {"type": "bitmask", "mask": control.maximum}
    return {"type": control.type_name, "minimum": control.minimum, "maximum": control.maximum, "step": control.step}


def _bad(control: vc.ControlInfo, value: Any, why: str) -> InvalidParams:
    return InvalidParams(
        f"{control.name}: {why}",
        data={"control": control.name, "value": value, "reason": "invalid_value", "allowed": allowed(control)},
    )


def check_value(control: vc.ControlInfo, value: Any) -> int:
    """The integer the driver gets for ``value``, or InvalidParams saying what is allowed."""
    t = control.type
    if t == vc.TYPE_BUTTON:
        if value in (True, 1, None):
            return 1
        raise _bad(control, value, "a button takes true (press)")
    if t == vc.TYPE_BOOLEAN:
        if isinstance(value, bool):
            return int(value)
        if value in (0, 1):
            return int(value)
        raise _bad(control, value, f"{value!r} is not a boolean")
    if t in (vc.TYPE_MENU, vc.TYPE_INTEGER_MENU):
        index = _menu_choice(control, value)
        if index is None:
            items = ", ".join(f"{m.index}={m.name if m.name is not None else m.value}" for m in control.menu)
            raise _bad(control, value, f"{value!r} is not one of its menu items ({items})")
        return index
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(control, value, f"{value!r} is not an integer")
    if t == vc.TYPE_BITMASK:
        if value < 0 or value & ~control.maximum:
            raise _bad(control, value, f"{value} has bits outside the mask 0x{control.maximum:x}")
        return value
    if not control.minimum <= value <= control.maximum:
        raise _bad(control, value, f"{value} is out of range {control.minimum}..{control.maximum}")
    if control.step > 1 and (value - control.minimum) % control.step:
        raise _bad(control, value, f"{value} is not on a step of {control.step} from {control.minimum}")
    return value


def check_writable(control: vc.ControlInfo, *, inactive_ok: bool = False) -> None:
    """Raise when ``control`` cannot be written now (reasons in ``error.data.reason``)."""
    data = {"control": control.name}
    if not control.supported:
        raise InvalidParams(
            f"{control.name}: controls of type {control.type_name} are not supported",
            data={**data, "reason": "unsupported"},
        )
    if control.has(vc.FLAG_READ_ONLY) or control.has(vc.FLAG_DISABLED):
        raise InvalidParams(f"{control.name} is read-only", data={**data, "reason": "read_only"})
    if control.has(vc.FLAG_GRABBED):
        raise InvalidState(
            f"{control.name} is grabbed: the driver does not allow changing it while streaming",
            data={**data, "reason": "grabbed"},
        )
    if control.has(vc.FLAG_INACTIVE) and not inactive_ok:
        hint = ""
        if control.id in _MANUAL:
            hint = " (its automatic control is on: switch it to manual first, or in the same call)"
        raise InvalidState(f"{control.name} is inactive{hint}", data={**data, "reason": "inactive"})


def validate(controls: list[vc.ControlInfo], requested: dict) -> list[tuple[vc.ControlInfo, int]]:
    """``{name or id: value}`` -> ``[(control, driver value)]``; the first problem raises."""
    if not isinstance(requested, dict) or not requested or len(requested) > MAX_PER_CALL:
        raise InvalidParams(
            f"controls must be an object of 1 to {MAX_PER_CALL} {{name: value}} pairs", data={"param": "controls"}
        )
    out: list[tuple[vc.ControlInfo, int]] = []
    seen: set[int] = set()
    for key, value in requested.items():
        control = lookup(controls, key)
        if control is None:
            raise InvalidParams(
                f"Unknown control {key!r}",
                data={"control": key, "reason": "unknown", "allowed": [c.name for c in controls if c.supported]},
            )
        if control.id in seen:
            raise InvalidParams(f"{control.name} is given twice", data={"control": control.name, "reason": "duplicate"})
        seen.add(control.id)
        # Inactive is checked when the control's stage runs: its automatic partner may
        # be switched to manual earlier in the same call.
        check_writable(control, inactive_ok=control.id in _MANUAL)
        out.append((control, check_value(control, value)))
    return out


def related(ids: Iterable[int]) -> set[int]:
    """``ids`` and the automatic/manual partners whose flags a write of them changes."""
    out = set(ids)
    for auto, (manuals, _) in PAIRS.items():
        if auto in out:
            out.update(manuals)
        elif out & set(manuals):
            out.add(auto)
    return out


def stages(values: list[tuple[vc.ControlInfo, int]]) -> list[list[tuple[vc.ControlInfo, int]]]:
    """Split a validated request into the batches that work, in order (empty ones dropped).

    1. automatic controls switched to manual, and every control not in a pair;
    2. the manual controls of the pairs;
    3. automatic controls switched to automatic.
    """
    first, manual, last = [], [], []
    for control, value in values:
        pair = PAIRS.get(control.id)
        if pair is not None:
            (last if pair[1](value) else first).append((control, value))
        elif control.id in _MANUAL:
            manual.append((control, value))
        else:
            first.append((control, value))
    return [s for s in (first, manual, last) if s]


# --- presentation ------------------------------------------------------------------------------


def control_object(control: vc.ControlInfo, value: int | None, stored: Any) -> dict:
    d: dict = {
        "id": control.id,
        "name": control.name,
        "label": control.label,
        "class": control.klass,
        "type": control.type_name if control.supported else "unsupported",
        "supported": control.supported,
        "flags": control.flag_names(),
        "value": _present(control, value),
        "stored": stored,
    }
    if control.supported:
        d.update(
            minimum=control.minimum,
            maximum=control.maximum,
            step=control.step,
            default=_present(control, control.default),
        )
    else:
        d["v4l2_type"] = control.type_name
    if control.menu:
        d["menu"] = [m.to_dict() for m in control.menu]
    return d


def _present(control: vc.ControlInfo, value: int | None) -> Any:
    if value is None or control.type == vc.TYPE_BUTTON:
        return None
    if control.type == vc.TYPE_BOOLEAN:
        return bool(value)
    return value


# --- the component ---------------------------------------------------------------------------------


class CameraControls(Service):
    """Controls of every connected camera, stored values re-applied on plug, a change watch.

    Collaborators: ``cameras`` (registry; this object subscribes to it), ``settings``
    (:class:`camsvc.cameras.settings.CameraSettings`), ``clock``, ``publish(method,
    params)``, ``open_device(path)`` and ``poll_interval`` (seconds; 0 = no watch).
    """

    NOTIFICATION = "camera_controls_update"

    def __init__(
        self,
        cameras: Any,
        settings: Any,
        clock: Any,
        publish: Callable[[str, dict], Any],
        *,
        open_device: Callable[[str], ControlDevice] = ControlDevice,
        poll_interval: float = 2.0,
    ) -> None:
        self.cameras = cameras
        self.settings = settings
        self.clock = clock
        self.publish = publish
        self.open_device = open_device
        self.poll_interval = poll_interval
        self._devices: dict[str, ControlDevice] = {}
        #: Last known {control id: (value, flags)} per camera: the watch's reference.
        self._known: dict[str, dict[int, tuple[int | None, int]]] = {}
        self._controls: dict[str, list[vc.ControlInfo]] = {}
        self._loop: LoopingCall | None = None
        self.stats = {"applied": 0, "apply_failures": 0, "slow_calls": 0, "max_block": 0.0}
        #: How long the last control batches kept the reactor (seconds), for get_status.
        self.blocks: deque[float] = deque(maxlen=1000)

    # -- service ------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self.poll_interval > 0:
            self._loop = LoopingCall(self.poll)
            self._loop.clock = self.clock
            self._loop.start(self.poll_interval, now=False).addErrback(
                lambda f: log.failure("Camera control watch stopped", f)
            )

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        for camera_id in list(self._devices):
            self._close(camera_id)
        if self.settings.pending:
            self.settings.flush()

    def status(self) -> dict:
        """The ``controls`` section of ``get_status``: open nodes, re-applies, reactor block times."""
        recent = sorted(self.blocks)

        def pct(q: float) -> float | None:
            return round(recent[min(len(recent) - 1, int(q * len(recent)))] * 1000, 3) if recent else None

        return {
            "open_devices": len(self._devices),
            "applied": self.stats["applied"],
            "apply_failures": self.stats["apply_failures"],
            "slow_calls": self.stats["slow_calls"],
            "block_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": round(self.stats["max_block"] * 1000, 3)},
        }

    # -- devices --------------------------------------------------------------------------

    def _device(self, camera: Camera) -> ControlDevice:
        if camera.status != CONNECTED:
            raise InvalidState(
                f"{camera.camera_id} is {camera.status}: its controls cannot be reached",
                data={"camera_id": camera.camera_id, "status": camera.status},
            )
        dev = self._devices.get(camera.camera_id)
        if dev is not None and dev.path != camera.device:
            self._close(camera.camera_id)
            dev = None
        if dev is None:
            try:
                dev = self.open_device(camera.device)
            except OSError as e:
                raise InvalidState(
                    f"Cannot open {camera.device} for {camera.camera_id}: {os.strerror(e.errno or errno.EIO)}",
                    data={"camera_id": camera.camera_id, "errno": e.errno},
                ) from e
            self._devices[camera.camera_id] = dev
        return dev

    def _close(self, camera_id: str) -> None:
        dev = self._devices.pop(camera_id, None)
        if dev is not None:
            dev.close()

    def _run(self, camera: Camera, what: str, fn: Callable[[ControlDevice], Any]) -> Any:
        """One batch of ioctls on the camera's node, timed; OS errors become API errors."""
        dev = self._device(camera)
        started = time.perf_counter()
        try:
            return fn(dev)
        except vc.ControlIoError as e:
            if e.errno in _VANISHED:
                self._close(camera.camera_id)
                raise InvalidState(
                    f"{camera.camera_id} vanished while {what}",
                    data={"camera_id": camera.camera_id, "errno": e.errno},
                ) from e
            raise self._io_error(camera, e) from e
        finally:
            elapsed = time.perf_counter() - started
            self.blocks.append(elapsed)
            self.stats["max_block"] = max(self.stats["max_block"], elapsed)
            if elapsed > BLOCK_WARN:
                self.stats["slow_calls"] += 1
                log.warn(
                    "Control ioctls for {camera_id} ({what}) blocked the reactor {ms:.1f} ms",
                    camera_id=camera.camera_id,
                    what=what,
                    ms=elapsed * 1000,
                )

    def _io_error(self, camera: Camera, e: vc.ControlIoError) -> Exception:
        name = None
        for c in self._controls.get(camera.camera_id, ()):
            if c.id == e.control:
                name = c.name
        data = {"camera_id": camera.camera_id, "errno": errno.errorcode.get(e.errno, e.errno), "control": name}
        subject = name or "the controls"
        if e.errno == errno.EBUSY:
            return InvalidState(f"{subject}: the device is busy (EBUSY)", data={**data, "reason": "busy"})
        if e.errno == errno.EACCES:
            return InvalidState(
                f"{subject}: the driver refused access (EACCES: read-only, write-only or inactive now)",
                data={**data, "reason": "access"},
            )
        if e.errno in (errno.EINVAL, errno.ERANGE):
            return InvalidParams(f"{subject}: the driver rejected the value ({errno.errorcode[e.errno]})", data=data)
        return InvalidState(f"{subject}: {e}", data={**data, "reason": "io"})

    # -- reading ----------------------------------------------------------------------------

    def _read(self, dev: ControlDevice, camera_id: str) -> tuple[list[vc.ControlInfo], dict[int, int]]:
        controls = dev.controls()
        self._controls[camera_id] = controls
        try:
            values = dev.values(controls)
        except vc.ControlIoError as e:
            if e.errno in _VANISHED:
                raise
            # One unreadable control (a driver answering EIO/EACCES for it) must not
            # hide the others: read them one by one.
            values = {}
            for c in controls:
                try:
                    values.update(dev.values([c]))
                except vc.ControlIoError as one:
                    if one.errno in _VANISHED:
                        raise
        self._known[camera_id] = {c.id: (values.get(c.id), c.flags) for c in controls}
        return controls, values

    def describe(self, camera: Camera) -> dict:
        """The ``get_camera_controls`` result for ``camera``.

        A change this read finds (made outside camsvc since the last watch) is published
        too: the read moves the watch's reference, which would otherwise swallow it."""
        before = self._known.get(camera.camera_id)
        controls, values = self._run(camera, "reading controls", lambda dev: self._read(dev, camera.camera_id))
        self._publish_changes(camera, controls, values, before)
        stored = self.settings.controls(camera.camera_id)
        classes: dict[str, list] = {}
        for c in controls:
            classes.setdefault(c.klass, []).append(control_object(c, values.get(c.id), stored.get(c.name)))
        return {
            "device": camera.device,
            "camera_id": camera.camera_id,
            "classes": [{"class": k, "controls": v} for k, v in classes.items()],
            "stored": dict(stored),
        }

    # -- writing ------------------------------------------------------------------------------

    def _apply(self, dev: ControlDevice, camera_id: str, requested: dict) -> dict[str, Any]:
        # The last enumeration names the controls; each one is queried again right before
        # its batch (flags change as earlier batches run, a driver may change a range).
        controls = self._controls.get(camera_id)
        if controls is None:
            controls = self._controls[camera_id] = dev.controls()
        values = validate(controls, requested)
        for stage in stages(values):
            fresh = []
            for control, value in stage:
                current = dev.query(control.id) or control
                check_writable(current)
                fresh.append((current, check_value(current, value)))
            dev.set(fresh)
        written = [c for c, _ in values]
        readback = dev.values(written)
        return {c.name: _present(c, readback.get(c.id)) for c in written if c.readable} | {
            c.name: None for c in written if not c.readable
        }

    def set(self, camera: Camera, requested: dict, *, store: bool = True) -> dict:
        """Validate and apply ``requested``; store it; return the values read back."""
        self._seed(camera)
        result = self._run(camera, "setting controls", lambda dev: self._apply(dev, camera.camera_id, requested))
        if store:
            controls = self._controls.get(camera.camera_id, [])
            keep = {}
            for name, value in result.items():
                c = lookup(controls, name)
                if c is not None and c.type != vc.TYPE_BUTTON and value is not None:
                    keep[name] = value
            self.settings.store_controls(camera.camera_id, keep)
        controls = self._controls.get(camera.camera_id, [])
        self._changed(camera, related(c.id for c in (lookup(controls, n) for n in result) if c is not None))
        return {"device": camera.device, "camera_id": camera.camera_id, "controls": result}

    def reset(self, camera: Camera, names: list | None = None) -> dict:
        """Return ``names`` (default: every writable control) to the driver's defaults."""

        def defaults(dev: ControlDevice) -> dict:
            controls = dev.controls()
            self._controls[camera.camera_id] = controls
            if names is None:
                chosen = [
                    c
                    for c in controls
                    if c.supported
                    and c.type != vc.TYPE_BUTTON
                    and not c.flags & (vc.FLAG_READ_ONLY | vc.FLAG_DISABLED | vc.FLAG_GRABBED)
                ]
            else:
                if not isinstance(names, list) or not names:
                    raise InvalidParams("controls must be a non-empty list of names", data={"param": "controls"})
                chosen = []
                for key in names:
                    c = lookup(controls, key)
                    if c is None:
                        raise InvalidParams(
                            f"Unknown control {key!r}",
                            data={
                                "control": key,
                                "reason": "unknown",
                                "allowed": [x.name for x in controls if x.supported],
                            },
                        )
                    chosen.append(c)
            return {c.name: c.default for c in chosen if c.type != vc.TYPE_BUTTON}

        self._seed(camera)
        wanted = self._run(camera, "reading defaults", defaults)
        # Resetting everything: an inactive manual control keeps its value until its
        # automatic partner is reset too; skip it rather than fail the whole reset.
        result = self._run(
            camera, "resetting controls", lambda dev: self._apply_defaults(dev, camera, wanted, names is None)
        )
        self.settings.forget_controls(camera.camera_id, list(wanted) if names is not None else None)
        self._changed(camera)
        return {"device": camera.device, "camera_id": camera.camera_id, "controls": result}

    def _apply_defaults(self, dev: ControlDevice, camera: Camera, wanted: dict, lenient: bool) -> dict:
        if not wanted:
            return {}
        if not lenient:
            return self._apply(dev, camera.camera_id, wanted)
        controls = self._controls[camera.camera_id]
        values = [(lookup(controls, n), v) for n, v in wanted.items()]
        done = []
        for stage in stages([(c, v) for c, v in values if c is not None]):
            fresh = []
            for control, value in stage:
                current = dev.query(control.id) or control
                if current.flags & (vc.FLAG_INACTIVE | vc.FLAG_READ_ONLY | vc.FLAG_GRABBED | vc.FLAG_DISABLED):
                    continue
                fresh.append((current, value))
            dev.set(fresh)
            done.extend(c for c, _ in fresh)
        readback = dev.values(done)
        return {c.name: _present(c, readback.get(c.id)) for c in done}

    def apply_stored(self, camera: Camera) -> bool:
        """Re-apply the stored values of ``camera`` (logged, never raised); True when applied.

        A stored control the camera no longer accepts (unknown, out of range, read-only
        after a firmware change) is left out with a warning and the others are applied.
        """
        stored = self.settings.controls(camera.camera_id)
        if not stored or camera.status != CONNECTED:
            return False
        pending = dict(stored)
        while pending:
            try:
                self.set(camera, dict(pending), store=False)
            except (InvalidParams, InvalidState) as e:
                data = e.data if isinstance(e.data, dict) else {}
                bad = data.get("control")
                if bad in pending and e.data.get("reason") not in ("busy", "io"):
                    log.warn(
                        "Stored control {control} of {camera_id} not re-applied: {error}",
                        control=bad,
                        camera_id=camera.camera_id,
                        error=e.message,
                    )
                    del pending[bad]
                    continue
                return self._apply_failed(camera, e)
            except Exception as e:  # every failure is the camera's, not the caller's
                return self._apply_failed(camera, e)
            self.stats["applied"] += 1
            log.info(
                "Stored controls re-applied to {camera_id} ({count})", camera_id=camera.camera_id, count=len(pending)
            )
            return True
        return False

    def _apply_failed(self, camera: Camera, e: Exception) -> bool:
        self.stats["apply_failures"] += 1
        log.warn(
            "Stored controls of {camera_id} not re-applied: {error}",
            camera_id=camera.camera_id,
            error=getattr(e, "message", str(e)),
        )
        return False

    # -- registry observer ---------------------------------------------------------------------

    def camera_added(self, camera: Camera) -> None:
        self._close(camera.camera_id)
        self._known.pop(camera.camera_id, None)
        self.apply_stored(camera)

    def camera_removed(self, camera: Camera) -> None:
        self._close(camera.camera_id)
        self._known.pop(camera.camera_id, None)
        self._controls.pop(camera.camera_id, None)

    def camera_changed(self, camera: Camera) -> None:
        dev = self._devices.get(camera.camera_id)
        if dev is not None and (camera.status != CONNECTED or dev.path != camera.device):
            self._close(camera.camera_id)

    # -- the watch -------------------------------------------------------------------------------

    def _seed(self, camera: Camera) -> None:
        """Take the watch's reference before a change, so the change is published."""
        if camera.camera_id not in self._known:
            self._run(camera, "reading controls", lambda dev: self._read(dev, camera.camera_id))

    def _read_some(self, dev: ControlDevice, camera_id: str, ids: set[int]) -> tuple[list, dict]:
        """Flags and values of ``ids`` only (after a write: the controls written and their partners)."""
        controls = [c for c in (dev.query(cid) for cid in sorted(ids)) if c is not None]
        values = dev.values(controls)
        known = self._known.setdefault(camera_id, {})
        before = {c.id: known.get(c.id) for c in controls}
        for c in controls:
            known[c.id] = (values.get(c.id), c.flags)
        return controls, values, before

    def _changed(self, camera: Camera, ids: set[int] | None = None) -> list[dict]:
        """Read values and flags (all, or ``ids``); publish the controls that differ from the
        last known ones."""
        before = self._known.get(camera.camera_id)
        try:
            if ids is not None and before is not None:
                controls, values, before = self._run(
                    camera, "reading controls back", lambda dev: self._read_some(dev, camera.camera_id, ids)
                )
            else:
                controls, values = self._run(camera, "watching controls", lambda dev: self._read(dev, camera.camera_id))
        except Exception as e:
            log.debug("Control watch of {camera_id} failed: {error}", camera_id=camera.camera_id, error=str(e))
            return []
        return self._publish_changes(camera, controls, values, before)

    def _publish_changes(self, camera: Camera, controls: list, values: dict, before: dict | None) -> list[dict]:
        if before is None:
            return []  # first read: nothing to compare with
        changed = []
        for c in controls:
            value, flags = before.get(c.id) or (None, None)
            if flags != c.flags or (value != values.get(c.id) and not c.has(vc.FLAG_VOLATILE)):
                changed.append(c)
        if changed:
            stored = self.settings.controls(camera.camera_id)
            items = [control_object(c, values.get(c.id), stored.get(c.name)) for c in changed]
            try:
                self.publish(
                    self.NOTIFICATION,
                    {"device": camera.device, "camera_id": camera.camera_id, "controls": items},
                )
            except Exception:
                log.failure("Publishing {method} failed", method=self.NOTIFICATION, camera_id=camera.camera_id)
            return items
        return []

    def poll(self) -> None:
        """One watch pass over the connected cameras (the first pass only takes a reference)."""
        for camera in self.cameras.connected():
            self._changed(camera)
