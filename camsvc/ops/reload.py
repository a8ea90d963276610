"""Configuration reload (SIGHUP): re-read the file, apply what can change live.

This module owns the reload decision.  :class:`ReloadListeners` (``app.reloads``,
used through ``app.on_reload``) is where components say which keys they can
apply while running and get called with ``(old, new)`` configurations when
those keys change.  :class:`Reloader` re-reads the file with the same rules
as at startup (:func:`camsvc.config.load_config`, environment overrides
included) and then:

* an invalid or unreadable file is **rejected**: one error line naming the
  key and the problem, the running configuration is kept;
* changed keys that some component applies live are **applied**: ``app.config``
  is replaced, in one assignment, by the running configuration with those
  keys taken from the file, and their listeners are called;
* other changed keys **need a restart**: a warning names them; they stay at
  their running values (``app.config`` always describes what is in effect).

Only key names are logged, never values (some are secrets).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from camsvc.config import ConfigError, load_config

log = Logger()


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"server.port": 8002, ...}``: every leaf key of a configuration dataclass."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, key + "."))
        else:
            out[key] = value
    return out


def changed_keys(old: Any, new: Any) -> list[str]:
    a, b = flatten(old), flatten(new)
    return sorted(k for k in a if a[k] != b.get(k))


def with_values(config: Any, values: dict[str, Any]) -> Any:
    """A copy of ``config`` with the given dotted keys replaced."""
    for key, value in values.items():
        config = _replace(config, key.split("."), value)
    return config


def _replace(obj: Any, parts: list[str], value: Any) -> Any:
    if len(parts) == 1:
        return dataclasses.replace(obj, **{parts[0]: value})
    return dataclasses.replace(obj, **{parts[0]: _replace(getattr(obj, parts[0]), parts[1:], value)})


def _matches(key: str, pattern: str) -> bool:
    return key == pattern or (pattern.endswith(".") and key.startswith(pattern))


class ReloadListeners:
    """Who applies which keys live.  ``app.on_reload(callback, keys)`` adds to it."""

    def __init__(self) -> None:
        self._listeners: list[tuple[Callable[[Any, Any], Any] | None, tuple[str, ...]]] = []

    def subscribe(self, callback: Callable[[Any, Any], Any] | None, keys: tuple[str, ...] | list[str]) -> None:
        """``keys``: dotted keys (``"logging.level"``) or section prefixes ending in a dot (``"retention."``).

        ``callback`` None declares keys that are live because their users read
        ``app.config`` at every use.
        """
        if isinstance(keys, str):
            keys = (keys,)
        if not keys:
            raise ValueError("on_reload needs the keys the callback applies")
        self._listeners.append((callback, tuple(keys)))

    def is_live(self, key: str) -> bool:
        return any(_matches(key, pattern) for _, keys in self._listeners for pattern in keys)

    def notify(self, old: Any, new: Any, changed: list[str]) -> list[str]:
        """Call the listeners whose keys changed; return descriptions of those that failed."""
        failed = []
        for callback, keys in list(self._listeners):
            if callback is None or not any(_matches(k, p) for k in changed for p in keys):
                continue
            try:
                callback(old, new)
            except Exception:
                name = getattr(callback, "__qualname__", repr(callback))
                log.failure(
                    "Applying reloaded configuration ({keys}) in {callback} failed", keys=", ".join(keys), callback=name
                )
                failed.append(name)
        return failed


class Reloader:
    """Re-reads ``path`` and applies it to the App.

    Collaborators: the App (``config``, ``reloads``, ``metrics``), ``load``
    (``path -> Config``, raising ConfigError) and optionally ``systemd``
    (a :class:`camsvc.ops.systemd.SystemdService`, told around the reload).
    """

    def __init__(
        self, app: Any, path: str | None, *, load: Callable[[str | None], Any] = load_config, systemd: Any = None
    ) -> None:
        self.app = app
        self.path = os.path.abspath(path) if path else None
        self.load = load
        self.systemd = systemd

    def reload(self) -> dict:
        """Reload now; return ``{"result", "applied", "restart_needed", "error"}``."""
        if self.systemd is not None:
            self.systemd.reloading()
        try:
            return self._reload()
        finally:
            if self.systemd is not None:
                self.systemd.reloaded()

    def _reload(self) -> dict:
        source = self.path or "built-in defaults and environment"
        log.info("Reloading configuration from {source}", source=source)
        try:
            new = self.load(self.path)
        except ConfigError as exc:
            log.error(
                "Configuration reload rejected, keeping the running configuration: {error}",
                error=str(exc),
                config_key=exc.path,
            )
            self.app.metrics.config_reload("invalid")
            return {"result": "invalid", "applied": [], "restart_needed": [], "error": str(exc)}
        old = self.app.config
        changed = changed_keys(old, new)
        if not changed:
            log.info("Configuration reloaded: nothing changed")
            self.app.metrics.config_reload("ok")
            return {"result": "ok", "applied": [], "restart_needed": [], "error": None}
        reloads = self.app.reloads
        live = [k for k in changed if reloads.is_live(k)]
        restart = [k for k in changed if k not in live]
        new_values = flatten(new)
        effective = with_values(old, {k: new_values[k] for k in live})
        self.app.config = effective
        failed = reloads.notify(old, effective, live) if live else []
        if live:
            log.info("Configuration reloaded: applied {keys}", keys=", ".join(live))
        if restart:
            log.warn(
                "Configuration reloaded: these changes need a restart to take effect: {keys}",
                keys=", ".join(restart),
            )
        result = "error" if failed else "ok"
        self.app.metrics.config_reload(result)
        return {"result": result, "applied": live, "restart_needed": restart, "error": None}
