"""Stable camera ids: the persisted map from a camera's identity key to ``camera<N>``.

This module owns two things:

* :func:`identity_key`, the rule that names a physical camera from its udev
  properties: ``usb:<ID_SERIAL>:<ID_USB_INTERFACE_NUM>`` (:func:`serial_key`) when the
  device has a usable USB serial (``ID_SERIAL_SHORT``, not a placeholder of
  :data:`PLACEHOLDER_SERIALS`, not known to be shared by cameras present at the same
  time; ``ID_SERIAL`` alone is only vendor_model and is shared by identical cameras),
  else ``path:<ID_PATH>`` (:func:`port_key`, the physical port: CSI, platform and
  serial-less USB cameras), else ``node:<devnode>``.  A node other than the first of
  its interface (sysfs ``index`` > 0) gets ``#index<N>`` appended.  Discovery applies
  the rule to the present set (who holds which key, moving a key when a serial turns
  out to be shared, migrating an old map's serial keys to port keys).
* :class:`IdentityStore`, the persisted map.  It lives in
  ``<storage.state_dir>/camera-ids.json``::

      {"version": 1, "next_number": 3,
       "cameras": {"camera0": {"key": "usb:Logitech_C920_A1B2:00", "name": "HD Pro Webcam C920"},
                   "camera2": {"key": "path:platform-vivid.0", "name": "vivid"}},
       "shared_serials": ["A1B2C3"]}

  ``shared_serials`` (optional) lists serials seen on two cameras at once: they
  identify no camera from then on (:meth:`IdentityStore.mark_shared`);
  ``shared_ports`` port keys seen on two nodes at once (several cameras under one
  platform device): those cameras are keyed by port and QUERYCAP ``bus_info``
  (:func:`node_key`, never by the node number: a node the kernel renumbers keeps its
  camera), ``sys:<sysfs path>`` only when QUERYCAP gave no ``bus_info`` (older maps
  used it always: such an entry moves to the new key when its node is seen).

  Ids are never reused for another key: ``next_number`` only grows, even when an
  operator deletes an entry.  Writes are atomic (temp file, fsync, rename, fsync of
  the directory).  A missing file starts an empty map; a corrupt one is logged, kept
  aside as ``camera-ids.json.corrupt`` for the operator, and rebuilt — never fatal.
  A failed write (read-only or full disk) is logged and retried on the next change;
  ids stay stable for the life of the process either way.

Collaborators: none but the filesystem; the caller decides when to write: discovery
takes :meth:`IdentityStore.pending_write` and hands it to a
:class:`camsvc.common.writer.BackgroundWriter` (never fsync on the reactor);
:meth:`IdentityStore.flush` writes synchronously.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from twisted.logger import Logger

from camsvc.common.fileio import atomic_write

log = Logger()

FILENAME = "camera-ids.json"
VERSION = 1
_CAMERA_ID = re.compile(r"^camera(\d+)$")


#: Serial numbers seen shared by whole production runs (Logitech C270 ``200901010001``,
#: generic UVC modules ``SN0001``, ``0001``, ``01.00.00``, ...): they identify nothing.
#: Compared upper-case; any all-same-character serial (``000000``, ``FFFFFFFF``) and
#: ``0x...``/``SN...`` spellings of 1 count too (:func:`placeholder_serial`).
PLACEHOLDER_SERIALS = frozenset(
    {
        "200901010001",
        "SN0001",
        "0001",
        "01.00.00",
        "0123456789",
        "123456789",
        "1234567890",
        "12345678",
        "123456",
        "0123456789ABCDEF",
        "NONE",
        "NULL",
        "SERIAL",
        "DEFAULT",
        "UNKNOWN",
        "DEFAULT_SERIAL",
        "SERIALNUMBER",
        "USB2.0",
        "HD",
    }
)
_SERIAL_ONE = re.compile(r"^(?:SN|0X)?0*1$")


def placeholder_serial(serial: str) -> bool:
    """True for an empty or known-bogus serial number (see :data:`PLACEHOLDER_SERIALS`)."""
    s = serial.strip().upper()
    return not s or s in PLACEHOLDER_SERIALS or len(set(s)) == 1 or bool(_SERIAL_ONE.match(s))


def usable_serial(properties: Mapping[str, str]) -> str | None:
    """The USB serial (``ID_SERIAL_SHORT``) when there is one that is not a placeholder."""
    short = properties.get("ID_SERIAL_SHORT")
    if not short or not properties.get("ID_SERIAL") or placeholder_serial(short):
        return None
    return short


def _indexed(key: str, index: int) -> str:
    return f"{key}#index{index}" if index else key


def serial_key(properties: Mapping[str, str], index: int = 0) -> str | None:
    """``usb:<ID_SERIAL>:<interface>[#index<N>]`` whenever udev has a serial (bogus or
    not): the key of a serial-identified camera, and the form older maps used."""
    serial = properties.get("ID_SERIAL")
    if not (properties.get("ID_SERIAL_SHORT") and serial):
        return None
    return _indexed(f"usb:{serial}:{properties.get('ID_USB_INTERFACE_NUM', '')}", index)


def port_key(properties: Mapping[str, str], devnode: str | None, index: int = 0) -> str:
    """``path:<ID_PATH>[#index<N>]`` (the physical port; for USB ``ID_PATH`` ends in
    ``:<config>.<interface>``, so the interface is part of it), else ``node:<devnode>``."""
    if properties.get("ID_PATH"):
        return _indexed(f"path:{properties['ID_PATH']}", index)
    return f"node:{devnode or '?'}"


def node_key(properties: Mapping[str, str], index: int, bus_info: str, sys_path: str) -> str:
    """The key of one of several cameras under one port (``vivid n_devs=2``: two V4L2
    devices under the platform device ``vivid.0``, same ``ID_PATH``, both index 0):
    ``path:<ID_PATH>#bus:<bus_info>[#index<N>]`` from the node's QUERYCAP ``bus_info``
    (names the V4L2 device: ``platform:vivid-001``; a USB camera's is its port), which
    stays the same when the kernel gives the node another number; ``sys:<sysfs path>``
    (holds the node number) only without an ``ID_PATH`` or a ``bus_info``."""
    id_path = properties.get("ID_PATH")
    bus = (bus_info or "").strip()
    if id_path and bus:
        return _indexed(f"path:{id_path}#bus:{bus}", index)
    return f"sys:{sys_path}"


def identity_key(
    properties: Mapping[str, str], devnode: str | None, index: int = 0, shared: frozenset | set = frozenset()
) -> str:
    """The identity key of a capture node: :func:`serial_key` when the serial is
    usable and not known to be ``shared`` by several cameras, else :func:`port_key`."""
    serial = usable_serial(properties)
    if serial is not None and serial not in shared:
        key = serial_key(properties, index)
        if key is not None:
            return key
    return port_key(properties, devnode, index)


def fallback_key(properties: Mapping[str, str], devnode: str | None, index: int = 0) -> str:
    """The port key (kept for callers of the old name)."""
    return port_key(properties, devnode, index)


class IdentityStore:
    """``key -> camera id``, persisted at ``path``.

    :meth:`load` once at start; :meth:`camera_id` to look up or allocate;
    :meth:`flush` writes when something changed (``dirty``).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._by_key: dict[str, str] = {}
        self._entries: dict[str, dict] = {}
        self._next = 0
        self.shared: set[str] = set()
        self.shared_ports: set[str] = set()
        self.dirty = False
        self.loaded = False
        self.write_errors = 0

    # -- reading ------------------------------------------------------------------

    def load(self) -> None:
        """Read the map; a missing file is empty, a corrupt one is set aside and rebuilt."""
        self.loaded = True
        self._by_key, self._entries, self._next = {}, {}, 0
        self.shared = set()
        self.shared_ports = set()
        try:
            with open(self.path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            log.info("No camera id map at {path} yet; ids start at camera0", path=self.path)
            return
        except (OSError, UnicodeDecodeError) as exc:
            log.error("Cannot read camera id map {path}: {error}; starting a new one", path=self.path, error=exc)
            self._set_aside()
            return
        try:
            self._parse(json.loads(text))
        except (ValueError, TypeError, KeyError) as exc:
            log.error(
                "Camera id map {path} is corrupt ({error}); kept as {path}.corrupt, starting a new one "
                "(cameras may get new ids)",
                path=self.path,
                error=exc,
            )
            self._by_key, self._entries, self._next = {}, {}, 0
            self._set_aside()
            self.dirty = True

    def _parse(self, data: Any) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("cameras"), dict):
            raise ValueError("expected an object with a 'cameras' object")
        next_number = data.get("next_number", 0)
        if not isinstance(next_number, int) or isinstance(next_number, bool) or next_number < 0:
            raise ValueError(f"next_number must be a non-negative integer, got {next_number!r}")
        highest = -1
        for camera_id, entry in data["cameras"].items():
            match = _CAMERA_ID.match(camera_id)
            if not match:
                raise ValueError(f"{camera_id!r} is not a camera id (camera<N>)")
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not entry["key"]:
                raise ValueError(f"{camera_id}: entry needs a non-empty 'key' string")
            key = entry["key"]
            highest = max(highest, int(match.group(1)))  # even a dropped duplicate's id stays retired
            if key in self._by_key:
                log.warn(
                    "Camera id map {path}: key {key} listed for both {first} and {second}; keeping {first}",
                    path=self.path,
                    key=key,
                    first=self._by_key[key],
                    second=camera_id,
                )
                continue
            self._by_key[key] = camera_id
            self._entries[camera_id] = {"key": key, "name": str(entry.get("name", ""))}
        self._next = max(next_number, highest + 1)
        shared = data.get("shared_serials", [])
        if not isinstance(shared, list) or not all(isinstance(s, str) for s in shared):
            raise ValueError("shared_serials must be a list of strings")
        self.shared = set(shared)
        ports = data.get("shared_ports", [])
        if not isinstance(ports, list) or not all(isinstance(s, str) for s in ports):
            raise ValueError("shared_ports must be a list of strings")
        self.shared_ports = set(ports)

    def _set_aside(self) -> None:
        try:
            os.replace(self.path, self.path + ".corrupt")
        except OSError as exc:
            log.warn("Cannot move {path} aside: {error}", path=self.path, error=exc)

    def get(self, key: str) -> str | None:
        return self._by_key.get(key)

    def __len__(self) -> int:
        return len(self._by_key)

    def entries(self) -> dict[str, dict]:
        return {cid: dict(e) for cid, e in self._entries.items()}

    # -- writing ------------------------------------------------------------------

    def camera_id(self, key: str, name: str = "") -> tuple[str, bool]:
        """``(camera_id, new)``: the id for ``key``, allocating ``camera<next>`` if unseen."""
        existing = self._by_key.get(key)
        if existing is not None:
            return existing, False
        while f"camera{self._next}" in self._entries:
            self._next += 1
        camera_id = f"camera{self._next}"
        self._next += 1
        self._by_key[key] = camera_id
        self._entries[camera_id] = {"key": key, "name": name}
        self.dirty = True
        return camera_id, True

    def mark_shared(self, serial: str) -> None:
        """Remember that ``serial`` was seen on two cameras at once: it identifies neither."""
        if serial not in self.shared:
            self.shared.add(serial)
            self.dirty = True

    def mark_port_shared(self, key: str) -> None:
        """Remember that port key ``key`` was seen on two nodes at once (several cameras
        under one platform device: ``vivid n_devs=2``): they are told apart by node."""
        if key not in self.shared_ports:
            self.shared_ports.add(key)
            self.dirty = True

    def rekey(self, old: str, new: str) -> str | None:
        """Move the id of ``old`` to ``new`` (the camera keeps its id under its new key).

        An id ``new`` had before is retired (never reused).  Returns the moved id, or
        None when ``old`` is unknown.
        """
        camera_id = self._by_key.pop(old, None)
        if camera_id is None:
            return None
        retired = self._by_key.pop(new, None)
        if retired is not None and retired != camera_id:
            self._entries.pop(retired, None)
        self._by_key[new] = camera_id
        self._entries[camera_id] = {**self._entries.get(camera_id, {}), "key": new}
        self.dirty = True
        return camera_id

    def to_json(self) -> dict:
        def number(cid: str) -> int:
            return int(_CAMERA_ID.match(cid).group(1))

        cameras = {cid: self._entries[cid] for cid in sorted(self._entries, key=number)}
        out = {"version": VERSION, "next_number": self._next, "cameras": cameras}
        if self.shared:
            out["shared_serials"] = sorted(self.shared)
        if self.shared_ports:
            out["shared_ports"] = sorted(self.shared_ports)
        return out

    def pending_write(self) -> bytes | None:
        """The map's new content when it changed since the last one taken (clears
        ``dirty``; :meth:`write_failed` sets it again), else None."""
        if not self.dirty:
            return None
        self.dirty = False
        return (json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    def write_failed(self, exc: BaseException | None = None) -> None:
        """A write of :meth:`pending_write`'s content failed: retry on the next change."""
        self.write_errors += 1
        self.dirty = True

    def flush(self) -> bool:
        """Write the map atomically now if it changed; True when the file is current."""
        data = self.pending_write()
        if data is None:
            return True
        try:
            atomic_write(self.path, data, mode=0o644, dir_mode=0o777)
        except OSError:
            self.write_failed()
            log.failure("Cannot save the camera id map to {path}; will retry on the next change", path=self.path)
            return False
        return True
