"""Storage: free space and its thresholds, and the retention policy that deletes old files.

This module owns two services:

* :class:`StorageMonitor` reads the file systems holding ``storage.recordings_dir`` and
  ``storage.snapshots_dir`` (``statvfs``), classifies free space as ``ok``, ``low``
  (below ``storage.warn_free_percent``) or ``critical`` (below
  ``storage.critical_free_percent``), refuses new recordings and snapshots while
  critical (-32007), checks every ``storage.check_interval`` seconds on the injected
  clock and publishes ``system_status_update`` when the level changes.
* :class:`Retention` keeps the retention policy (``enabled``, ``max_age_days``,
  ``max_size_gb``) persisted in ``<state_dir>/retention.json`` (written atomically; once
  set through the API it overrides the ``retention`` config section, across restarts)
  and enforces it every ``retention.interval`` seconds while enabled, and on demand:
  files older than the age limit first, then the oldest files until the total size fits.
  Files being recorded are never deleted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from camsvc.common.errors import FileNotFound, InsufficientStorage, InvalidParams, RpcError
from camsvc.common.fileio import atomic_write
from camsvc.media.files import KINDS, RECORDINGS, FileStore

log = Logger()

OK = "ok"
LOW = "low"
CRITICAL = "critical"
_RANK = {OK: 0, LOW: 1, CRITICAL: 2}
GB = 1_000_000_000
#: A recording modified this recently may still be written by MediaMTX: never deleted.
RECENT_WRITE_GUARD = 120.0


def filesystem(path: str, statvfs: Callable[[str], Any] = os.statvfs) -> dict:
    """``{total_bytes, used_bytes, free_bytes, free_percent}`` of the file system holding ``path``.

    ``free`` is what an unprivileged writer can use (``f_bavail``).  A missing path is
    measured at its nearest existing parent.
    """
    probe = os.path.abspath(path)
    while True:
        try:
            st = statvfs(probe)
            break
        except FileNotFoundError:
            parent = os.path.dirname(probe)
            if parent == probe:
                raise
            probe = parent
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    percent = (free / total * 100.0) if total else 0.0
    return {"total_bytes": total, "used_bytes": used, "free_bytes": free, "free_percent": round(percent, 2)}


class StorageMonitor(Service):
    """Free space, thresholds and storage notifications.

    Collaborators: ``store`` (:class:`FileStore`), ``config`` (the storage section),
    ``clock``, ``publish(method, params)`` (the hub), ``statvfs`` (injectable).
    ``listeners`` are called with ``(level, previous)`` on every change.
    """

    name = "storage-monitor"

    def __init__(
        self,
        store: FileStore,
        config: Any,
        clock: Any,
        publish: Callable[[str, Any], Any],
        statvfs: Callable[[str], Any] = os.statvfs,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.publish = publish
        self.statvfs = statvfs
        self.level = OK
        self.listeners: list[Callable[[str, str], None]] = []
        self._loop: LoopingCall | None = None

    # -- reading -----------------------------------------------------------------

    def classify(self, free_percent: float) -> str:
        if free_percent < self.config.critical_free_percent:
            return CRITICAL
        if free_percent < self.config.warn_free_percent:
            return LOW
        return OK

    def filesystems(self) -> dict[str, dict]:
        """Per kind: the file system numbers of its directory."""
        return {kind: filesystem(self.store.dirs[kind], self.statvfs) for kind in KINDS}

    def info(self) -> dict:
        """The ``get_storage_info`` result.

        The top-level numbers are those of the file system with the least free space
        (recordings and snapshots usually share one).
        """
        systems = self.filesystems()
        worst_kind = min(KINDS, key=lambda k: systems[k]["free_percent"])
        worst = systems[worst_kind]
        level = self.classify(worst["free_percent"])
        kinds = {}
        for kind in KINDS:
            count, size = self.store.usage(kind)
            kinds[kind] = {
                "path": self.store.dirs[kind],
                "files": count,
                "bytes": size,
                **{k: systems[kind][k] for k in ("total_bytes", "free_bytes", "free_percent")},
            }
        return {
            **worst,
            "status": level,
            "low": level != OK,
            "critical": level == CRITICAL,
            "warn_free_percent": self.config.warn_free_percent,
            "critical_free_percent": self.config.critical_free_percent,
            "recordings": kinds[RECORDINGS],
            "snapshots": kinds["snapshots"],
        }

    def require_space(self, kind: str) -> None:
        """Raise -32007 when the file system of ``kind`` is below the critical threshold."""
        try:
            fs = filesystem(self.store.dirs[kind], self.statvfs)
        except OSError as exc:
            log.error("Cannot read free space of {path}: {err}", path=self.store.dirs[kind], err=exc)
            return
        if self.classify(fs["free_percent"]) == CRITICAL:
            raise InsufficientStorage(
                f"Insufficient storage: {fs['free_percent']:.1f}% free in the {kind} directory, below the critical"
                f" threshold of {self.config.critical_free_percent:g}%",
                data={"free_bytes": fs["free_bytes"], "free_percent": fs["free_percent"]},
            )

    # -- watching ------------------------------------------------------------------

    def check(self) -> str:
        """Re-read free space; publish ``system_status_update`` when the level changed."""
        try:
            systems = self.filesystems()
        except OSError as exc:
            log.error("Cannot read free space: {err}", err=exc)
            return self.level
        kind = min(KINDS, key=lambda k: systems[k]["free_percent"])
        fs = systems[kind]
        level = self.classify(fs["free_percent"])
        previous, self.level = self.level, level
        if level != previous:
            message = {
                OK: f"Storage is back to normal: {fs['free_percent']:.1f}% free",
                LOW: f"Storage is low: {fs['free_percent']:.1f}% free (warning below {self.config.warn_free_percent:g}%)",
                CRITICAL: f"Storage is critical: {fs['free_percent']:.1f}% free (below"
                f" {self.config.critical_free_percent:g}%); new recordings and snapshots are refused",
            }[level]
            (log.info if level == OK else log.warn)("{message}", message=message)
            self.publish(
                "system_status_update",
                {
                    "component": "storage",
                    "status": level,
                    "message": message,
                    "free_bytes": fs["free_bytes"],
                    "free_percent": fs["free_percent"],
                },
            )
            for listener in list(self.listeners):
                try:
                    listener(level, previous)
                except Exception:
                    log.failure("storage listener failed")
        return level

    def _check(self) -> None:
        try:
            self.check()
        except Exception:
            log.failure("Storage check failed")

    def startService(self) -> None:
        super().startService()
        self.store.ensure_dirs()
        self._loop = LoopingCall(self._check)
        self._loop.clock = self.clock
        self._loop.start(self.config.check_interval, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def status(self) -> dict:
        return {"status": self.level}


# -- retention -------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionPolicy:
    enabled: bool
    max_age_days: float
    max_size_gb: float

    def to_dict(self) -> dict:
        return asdict(self)


POLICY_FILE = "retention.json"
MAX_AGE_DAYS = 36500.0
MAX_SIZE_GB = 1_000_000.0


def _policy_from(data: Any) -> RetentionPolicy:
    if not isinstance(data, dict):
        raise ValueError("not an object")
    enabled = data.get("enabled")
    age = data.get("max_age_days")
    size = data.get("max_size_gb")
    if not isinstance(enabled, bool):
        raise ValueError("enabled must be a boolean")
    for name, value, top in (("max_age_days", age, MAX_AGE_DAYS), ("max_size_gb", size, MAX_SIZE_GB)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
            raise ValueError(f"{name} must be a number between 0 and {top:g}")
    return RetentionPolicy(enabled, float(age), float(size))


class Retention(Service):
    """The retention policy: persisted, enforced periodically and on demand.

    Collaborators: ``store`` (:class:`FileStore`), ``clock`` (wall-clock seconds:
    the reactor), ``state_dir``, ``config`` (the retention section: defaults and
    ``interval``), ``protected() -> set[(kind, filename)]`` (files being recorded),
    ``on_deleted(files, nbytes)`` (metrics).
    """

    name = "retention"

    def __init__(
        self,
        store: FileStore,
        clock: Any,
        state_dir: str,
        config: Any,
        protected: Callable[[], set] | None = None,
        on_deleted: Callable[[int, int], None] | None = None,
    ) -> None:
        self.store = store
        self.on_deleted = on_deleted or (lambda files, nbytes: None)
        self.clock = clock
        self.state_dir = state_dir
        self.config = config
        self.protected = protected or (lambda: set())
        self.path = os.path.join(state_dir, POLICY_FILE)
        self.policy = RetentionPolicy(config.enabled, config.max_age_days, config.max_size_gb)
        self.source = "config"
        self.last_run: dict | None = None
        self._loop: LoopingCall | None = None
        self.load()

    # -- the policy ------------------------------------------------------------------

    def load(self) -> None:
        """Use the persisted policy when there is a valid one; else the config section."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            self.policy = _policy_from(data)
            self.source = "state"
            log.info("Retention policy from {path}: {policy}", path=self.path, policy=self.policy.to_dict())
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.error(
                "Ignoring the retention policy in {path} ({err}); using the retention config section",
                path=self.path,
                err=exc,
            )

    def set_policy(self, changes: dict) -> RetentionPolicy:
        """Apply ``changes`` (enabled, max_age_days, max_size_gb), persist, return the policy."""
        data = self.policy.to_dict()
        data.update(changes)
        try:
            policy = _policy_from(data)
        except ValueError as exc:
            raise InvalidParams(f"Invalid params: {exc}") from None
        self._save(policy)
        self.policy = policy
        self.source = "state"
        log.info("Retention policy set: {policy}", policy=policy.to_dict())
        return policy

    def _save(self, policy: RetentionPolicy) -> None:
        data = (json.dumps(policy.to_dict(), indent=2) + "\n").encode("utf-8")
        try:
            atomic_write(self.path, data, mode=0o644, dir_mode=0o777)
        except OSError as exc:
            log.error("Cannot save the retention policy to {path}: {err}", path=self.path, err=exc)
            raise RpcError(f"Cannot save the retention policy: {exc.strerror}") from None

    # -- enforcing ---------------------------------------------------------------------

    def run(self, policy: RetentionPolicy | None = None) -> dict:
        """Delete what the policy says must go; return what was deleted.

        Age first (modification time older than ``max_age_days``), then size (oldest
        first until recordings + snapshots fit in ``max_size_gb``).  Protected files
        (being recorded, or a recording written in the last RECENT_WRITE_GUARD seconds)
        are skipped.  A limit of 0 means no limit.
        """
        policy = policy or self.policy
        now = self.clock.seconds()
        protected = set(self.protected())
        files = [f for kind in KINDS for f in self.store.list(kind)]
        keep = []
        deleted: list[dict] = []

        def guarded(f: Any) -> bool:
            if (f.kind, f.filename) in protected:
                return True
            return f.kind == RECORDINGS and now - f.mtime < RECENT_WRITE_GUARD

        def remove(f: Any, reason: str) -> bool:
            try:
                self.store.delete(f.kind, f.filename)
            except FileNotFound:
                return True  # gone already
            except RpcError as exc:
                log.error("Retention could not delete {name}: {err}", name=f.filename, err=exc.message)
                return False
            deleted.append(
                {
                    "kind": f.kind,
                    "filename": f.filename,
                    "file_size": f.size,
                    "modified_time": f.mtime,
                    "reason": reason,
                }
            )
            return True

        cutoff = now - policy.max_age_days * 86400 if policy.max_age_days > 0 else None
        for f in files:
            if cutoff is not None and f.mtime < cutoff and not guarded(f):
                if remove(f, "age"):
                    continue
            keep.append(f)
        if policy.max_size_gb > 0:
            limit = policy.max_size_gb * GB
            total = sum(f.size for f in keep)
            for f in sorted(keep, key=lambda f: (f.mtime, f.filename)):
                if total <= limit:
                    break
                if guarded(f):
                    continue
                if remove(f, "size"):
                    total -= f.size
        freed = sum(d["file_size"] for d in deleted)
        if deleted:
            log.info("Retention deleted {count} files ({freed} bytes)", count=len(deleted), freed=freed)
            self.on_deleted(len(deleted), freed)
        self.last_run = {"time": now, "deleted_count": len(deleted), "freed_bytes": freed}
        return {"deleted": deleted, "deleted_count": len(deleted), "freed_bytes": freed, "policy": policy.to_dict()}

    def _periodic(self) -> None:
        if not self.policy.enabled:
            return
        try:
            self.run()
        except Exception:
            log.failure("Retention run failed")

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self._periodic)
        self._loop.clock = self.clock
        self._loop.start(self.config.interval, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def status(self) -> dict:
        return {**self.policy.to_dict(), "source": self.source, "last_run": self.last_run}

    def config_reloaded(self, old: Any, new: Any) -> None:
        """``app.on_reload`` listener for ``retention.*``.

        The section's policy applies unless one was set with set_retention_policy
        (persisted in the state directory, which wins); a new ``interval`` restarts
        the timer.
        """
        self.config = new.retention
        if self.source == "config":
            self.policy = RetentionPolicy(self.config.enabled, self.config.max_age_days, self.config.max_size_gb)
            log.info("Retention policy from the reloaded configuration: {policy}", policy=self.policy.to_dict())
        else:
            log.info(
                "Retention policy kept: it was set with set_retention_policy ({path}), which overrides the "
                "retention section",
                path=self.path,
            )
        if old.retention.interval != self.config.interval and self._loop is not None and self._loop.running:
            self._loop.stop()
            self._loop = LoopingCall(self._periodic)
            self._loop.clock = self.clock
            self._loop.start(self.config.interval, now=False)
