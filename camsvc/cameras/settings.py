"""Stored camera settings: control values and stream settings per stable camera id.

This module owns ``<storage.state_dir>/camera-settings.json``::

    {"version": 1,
     "cameras": {"camera0": {"controls": {"brightness": 140, "auto_exposure": 1},
                             "stream": {"width": 1280, "height": 720, "fps": 30,
                                        "encoder": "copy"}}}}

Keys are camera ids (:mod:`camsvc.cameras.identity` keeps them stable across replug and
reboot), control values are stored by control name as the driver takes them (menu
index, 0/1 for booleans).  Only what a client set through the API is stored; a reset
removes it.  Writes go through :func:`camsvc.common.fileio.atomic_write` (mode 0644),
deferred by :data:`WRITE_DELAY` seconds and coalesced (at most one fsync per second
however often a slider moves), so an API call never waits for fsync; a pending write
is flushed when the service stops.
A missing file is an empty store; a corrupt one is logged, kept aside as
``camera-settings.json.corrupt`` and started afresh; a failed write is logged and retried
at the next change.

Collaborators: ``clock`` (``callLater`` for the deferred write).
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.logger import Logger

from camsvc.common.fileio import atomic_write

log = Logger()

FILENAME = "camera-settings.json"
VERSION = 1
#: Seconds between a change and its write (changes meanwhile share the write).
WRITE_DELAY = 1.0


class CameraSettings:
    """The stored settings (in memory, written through to the state file)."""

    def __init__(self, path: str, clock: Any) -> None:
        self.path = path
        self.clock = clock
        self._cameras: dict[str, dict] = {}
        self._write_call: Any = None
        self.load()

    # -- file ----------------------------------------------------------------------------

    def load(self) -> None:
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
            cameras = data["cameras"]
            if not isinstance(cameras, dict):
                raise ValueError("cameras is not an object")
            self._cameras = {
                str(cid): {
                    "controls": dict(entry.get("controls") or {}),
                    "stream": dict(entry.get("stream") or {}),
                }
                for cid, entry in cameras.items()
                if isinstance(entry, dict)
            }
        except FileNotFoundError:
            self._cameras = {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.error(
                "Stored camera settings {path} are unreadable ({error}); starting empty", path=self.path, error=str(e)
            )
            try:
                os.replace(self.path, self.path + ".corrupt")
            except OSError:
                log.failure("Could not keep {path} aside", path=self.path)
            self._cameras = {}

    def flush(self) -> bool:
        """Write the file now; False (logged) when it failed."""
        if self._write_call is not None and self._write_call.active():
            self._write_call.cancel()
        self._write_call = None
        body = {
            "version": VERSION,
            "cameras": {k: v for k, v in sorted(self._cameras.items()) if v["controls"] or v["stream"]},
        }
        try:
            atomic_write(self.path, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode(), mode=0o644)
        except OSError:
            log.failure("Could not write stored camera settings {path}", path=self.path)
            return False
        return True

    @property
    def pending(self) -> bool:
        """A change is waiting for its deferred write."""
        return self._write_call is not None and self._write_call.active()

    def _schedule(self) -> None:
        if self._write_call is None or not self._write_call.active():
            self._write_call = self.clock.callLater(WRITE_DELAY, self.flush)

    def _entry(self, camera_id: str) -> dict:
        return self._cameras.setdefault(camera_id, {"controls": {}, "stream": {}})

    # -- controls ----------------------------------------------------------------------------

    def controls(self, camera_id: str) -> dict:
        entry = self._cameras.get(camera_id)
        return dict(entry["controls"]) if entry else {}

    def store_controls(self, camera_id: str, values: dict) -> None:
        if not values:
            return
        entry = self._entry(camera_id)
        if all(entry["controls"].get(k) == v for k, v in values.items()):
            return
        entry["controls"].update(values)
        self._schedule()

    def forget_controls(self, camera_id: str, names: list | None = None) -> None:
        """Drop stored values (``names`` None: all of them)."""
        entry = self._cameras.get(camera_id)
        if not entry or not entry["controls"]:
            return
        if names is None:
            entry["controls"].clear()
        else:
            for name in names:
                entry["controls"].pop(name, None)
        self._schedule()

    # -- stream settings -------------------------------------------------------------------------

    def stream(self, camera_id: str) -> dict:
        entry = self._cameras.get(camera_id)
        return dict(entry["stream"]) if entry else {}

    def store_stream(self, camera_id: str, settings: dict) -> None:
        entry = self._entry(camera_id)
        if entry["stream"] == settings:
            return
        entry["stream"] = dict(settings)
        self._schedule()
