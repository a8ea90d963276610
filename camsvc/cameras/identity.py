"""Stable camera ids: the persisted map from a camera's identity key to ``camera<N>``.

This module owns two things:

* :func:`identity_key`, the rule that names a physical camera from its udev
  properties: ``usb:<ID_SERIAL>:<ID_USB_INTERFACE_NUM>`` when the device has a real
  USB serial (``ID_SERIAL_SHORT``; ``ID_SERIAL`` alone is only vendor_model and is
  shared by identical cameras), else ``path:<ID_PATH>`` (the physical port: CSI,
  platform and serial-less USB cameras), else ``node:<devnode>``.  A node other than
  the first of its interface (sysfs ``index`` > 0) gets ``#index<N>`` appended.
* :class:`IdentityStore`, the persisted map.  It lives in
  ``<storage.state_dir>/camera-ids.json``::

      {"version": 1, "next_number": 3,
       "cameras": {"camera0": {"key": "usb:Logitech_C920_A1B2:00", "name": "HD Pro Webcam C920"},
                   "camera2": {"key": "path:platform-vivid.0", "name": "vivid"}}}

  Ids are never reused for another key: ``next_number`` only grows, even when an
  operator deletes an entry.  Writes are atomic (temp file, fsync, rename, fsync of
  the directory).  A missing file starts an empty map; a corrupt one is logged, kept
  aside as ``camera-ids.json.corrupt`` for the operator, and rebuilt — never fatal.
  A failed write (read-only or full disk) is logged and retried on the next change;
  ids stay stable for the life of the process either way.

Collaborators: none but the filesystem; the caller decides when to :meth:`flush`
(discovery defers it so a new camera's first notification never waits for fsync).
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


def identity_key(properties: Mapping[str, str], devnode: str | None, index: int = 0) -> str:
    """The identity key of a capture node (see the module docstring for the rule)."""
    serial = properties.get("ID_SERIAL")
    if properties.get("ID_SERIAL_SHORT") and serial:
        key = f"usb:{serial}:{properties.get('ID_USB_INTERFACE_NUM', '')}"
    elif properties.get("ID_PATH"):
        key = f"path:{properties['ID_PATH']}"
    else:
        return f"node:{devnode or '?'}"
    return f"{key}#index{index}" if index else key


def fallback_key(properties: Mapping[str, str], devnode: str | None, index: int = 0) -> str:
    """The key used when :func:`identity_key`'s is already held by another camera that is
    present at the same time (two cameras sharing a bogus serial): the port path."""
    if properties.get("ID_PATH"):
        key = f"path:{properties['ID_PATH']}"
        return f"{key}#index{index}" if index else key
    return f"node:{devnode or '?'}"


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
        self.dirty = False
        self.loaded = False
        self.write_errors = 0

    # -- reading ------------------------------------------------------------------

    def load(self) -> None:
        """Read the map; a missing file is empty, a corrupt one is set aside and rebuilt."""
        self.loaded = True
        self._by_key, self._entries, self._next = {}, {}, 0
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

    def to_json(self) -> dict:
        def number(cid: str) -> int:
            return int(_CAMERA_ID.match(cid).group(1))

        cameras = {cid: self._entries[cid] for cid in sorted(self._entries, key=number)}
        return {"version": VERSION, "next_number": self._next, "cameras": cameras}

    def flush(self) -> bool:
        """Write the map atomically if it changed; True when the file is current."""
        if not self.dirty:
            return True
        data = (json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            atomic_write(self.path, data, mode=0o644, dir_mode=0o777)
        except OSError:
            self.write_errors += 1
            log.failure("Cannot save the camera id map to {path}; will retry on the next change", path=self.path)
            return False
        self.dirty = False
        return True
