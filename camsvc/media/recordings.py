"""Recordings: start/stop per camera, the keep-alive reader, auto-stop, recovery.

MediaMTX does the recording: camsvc turns the camera path's ``record`` flag on
(``app.mediamtx.set_recording``: fMP4 segments named
``<recordings_dir>/<camera_id>_<%Y-%m-%d_%H-%M-%S-%f>.mp4``, ``recordDeleteAfter: 0s``).
The path's publisher is on demand, so it only runs while someone reads the stream:
:class:`KeepAliveReader` is that someone — one ``recording.reader_command`` child
per recording camera (ffmpeg ``-c copy -f null`` by default), restarted with capped
exponential backoff if it dies while recording, stopped with the recording.

:class:`Recordings` (``app.recordings``) owns the sessions:

* ``start``: refuses a second start (-32005), checks free space (-32007), turns
  ``record`` on, attaches the reader and waits (``recording.start_timeout``) for
  MediaMTX's first segment file, whose name the result carries; an optional
  ``duration`` stops it on the reactor clock;
* ``stop``: refuses when not recording (-32005), turns ``record`` off (kept off in
  camsvc's desired state even when MediaMTX is down: the reconciler applies it
  later), stops the reader and reports the session's files;
* a camera unplugged while recording is finalised with ``status: FAILED``;
* every change sends ``recording_status_update`` and a ``camera_status_update``
  (the Camera object's ``recording`` flag reads :meth:`Recordings.is_recording`);
* active sessions are persisted in ``<state_dir>/recordings.json``; after a crash,
  or a shutdown with ``recording.on_shutdown: keep`` (or a package upgrade's restart
  with ``recording.on_upgrade: keep``, the default), they are resumed when MediaMTX
  answers and the camera is back (or finalised if their duration ran out or the
  camera does not return within ``recording.resume_timeout``); MediaMTX's own record
  flag is read then and logged.  A path MediaMTX still records with no camsvc
  session behind it is switched off by the reconciler: never a camera stuck
  "recording".
"""

from __future__ import annotations

import json
import os
import shlex
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import Service
from twisted.internet import error as ierror
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from camsvc.cameras.registry import CONNECTED, Camera
from camsvc.common.clocks import steady
from camsvc.common.errors import CameraNotFound, InternalError, InvalidParams, InvalidState, RpcError
from camsvc.common.writer import BackgroundWriter
from camsvc.media.files import RECORDINGS, FileStore, learn_utc_offset, time_from_name
from camsvc.media.process import which

log = Logger()

STATE_FILE = "recordings.json"
# Left in state_dir by the Debian package's postinst just before it restarts an
# active service for an upgrade (debian/camsvc.postinst): that stop keeps the
# recordings when recording.on_upgrade is "keep"; the next start removes it.
UPGRADE_MARKER = "upgrade-restart"
#: Seconds between looks for MediaMTX's first segment file.
POLL = 0.1
#: Seconds to let MediaMTX close the last segment before its size is reported.
SETTLE = 0.5
#: Reader restart backoff: first delay, cap; a reader that ran this long resets it.
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0
BACKOFF_RESET = 30.0
#: SIGTERM first; SIGKILL after this many seconds.
KILL_AFTER = 3.0

STARTED = "STARTED"
STOPPED = "STOPPED"
FAILED = "FAILED"


class RecordingFailed(InternalError):
    """The recording could not be started (the message says why)."""


# -- the keep-alive reader ---------------------------------------------------------------


class _ReaderProtocol(ProcessProtocol):
    def __init__(self, owner: KeepAliveReader) -> None:
        self.owner = owner
        self.stderr = bytearray()
        self.ended: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        pass  # drained and dropped

    def errReceived(self, data: bytes) -> None:
        self.stderr += data
        if len(self.stderr) > 4096:
            del self.stderr[:-4096]

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self.owner._ended(self, reason)


class KeepAliveReader:
    """One reader child for one camera, restarted while wanted.

    Collaborators: ``reactor`` (``IReactorProcess``), ``clock``, ``argv``.
    """

    def __init__(self, reactor: Any, clock: Any, argv: list[str], camera_id: str) -> None:
        self.reactor = reactor
        self.clock = clock
        self.argv = argv
        self.camera_id = camera_id
        self.wanted = False
        self.starts = 0
        self.failures = 0
        self._proto: _ReaderProtocol | None = None
        self._started_at = 0.0
        self._delay = BACKOFF_FIRST
        self._restart: Any = None
        self._kill: Any = None

    @property
    def running(self) -> bool:
        return self._proto is not None

    def start(self) -> None:
        self.wanted = True
        if self._proto is None and (self._restart is None or not self._restart.active()):
            self._spawn()

    def _spawn(self) -> None:
        self._restart = None
        if not self.wanted:
            return
        proto = _ReaderProtocol(self)
        try:
            executable = which(self.argv[0]) if os.sep not in self.argv[0] else self.argv[0]
            self.reactor.spawnProcess(proto, executable, list(self.argv), env=dict(os.environ))
        except Exception as exc:  # NotInstalled, OSError
            self.failures += 1
            log.error("Cannot start the recording reader of {camera_id}: {err}", camera_id=self.camera_id, err=str(exc))
            self._schedule()
            return
        self._proto = proto
        self._started_at = self.clock.seconds()
        self.starts += 1
        log.debug("Recording reader of {camera_id} started: {argv}", camera_id=self.camera_id, argv=self.argv)

    def _ended(self, proto: _ReaderProtocol, reason: Failure) -> None:
        if proto is not self._proto:
            return
        self._proto = None
        if self._kill is not None and self._kill.active():
            self._kill.cancel()
        self._kill = None
        if not self.wanted:
            return
        self.failures += 1
        ran = self.clock.seconds() - self._started_at
        if ran >= BACKOFF_RESET:
            self._delay = BACKOFF_FIRST
        tail = proto.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        log.warn(
            "Recording reader of {camera_id} exited ({reason}) after {ran:.1f} s; restarting in {delay:g} s: {stderr}",
            camera_id=self.camera_id,
            reason=reason.getErrorMessage(),
            ran=ran,
            delay=self._delay,
            stderr=" | ".join(tail),
        )
        self._schedule()

    def _schedule(self) -> None:
        delay = self._delay
        self._delay = min(self._delay * 2, BACKOFF_CAP)
        self._restart = self.clock.callLater(delay, self._spawn)

    def stop(self) -> Deferred:
        """Stop wanting it; SIGTERM (SIGKILL after KILL_AFTER s); fires once it exited."""
        self.wanted = False
        if self._restart is not None and self._restart.active():
            self._restart.cancel()
        self._restart = None
        proto = self._proto
        if proto is None:
            return succeed(None)
        done: Deferred = Deferred()
        proto.ended.addBoth(lambda _: done.callback(None))
        self._signal(proto, "TERM")
        if self._proto is proto:  # still running: SIGKILL if SIGTERM is ignored
            self._kill = self.clock.callLater(KILL_AFTER, self._signal, proto, "KILL")
        return done

    @staticmethod
    def _signal(proto: _ReaderProtocol, sig: str) -> None:
        try:
            proto.transport.signalProcess(sig)
        except (ierror.ProcessExitedAlready, OSError):
            pass


# -- sessions ---------------------------------------------------------------------------------


@dataclass
class Session:
    """One recording of one camera (persisted fields first)."""

    camera_id: str
    session_id: str
    start_time: float
    duration: float | None = None
    format: str = "fmp4"
    filename: str | None = None
    device: str = ""
    state: str = "starting"  # starting, recording, stopping, resuming
    before: set = field(default_factory=set)
    reader: KeepAliveReader | None = None
    timer: Any = None
    resume_deadline: float | None = None
    #: ``start_time`` on the clock's steady (monotonic) scale: the duration survives clock steps.
    steady_start: float | None = None

    def persisted(self) -> dict:
        keys = ("camera_id", "session_id", "start_time", "duration", "format", "filename", "device")
        return {k: getattr(self, k) for k in keys}


class Recordings(Service):
    """The recording sessions of every camera (``app.recordings``).

    Collaborators: ``mediamtx`` (``set_recording``, ``monitor`` availability
    events, ``client.get_path_config``), ``cameras`` (the registry, observed),
    ``reactor`` (``IReactorProcess``), ``clock``, ``config`` (the whole Config),
    ``store`` (:class:`FileStore`), ``require_space(kind)``, ``publish(method,
    params)`` (the hub), ``camera_changed(camera)`` (re-sends the Camera object),
    ``metrics`` (``recordings_active``, ``recording_event``).
    """

    name = "recordings"

    def __init__(
        self,
        *,
        mediamtx: Any,
        cameras: Any,
        reactor: Any,
        clock: Any,
        config: Any,
        store: FileStore,
        require_space: Callable[[str], None],
        publish: Callable[..., Any],
        camera_changed: Callable[[Camera], None] | None = None,
        metrics: Any = None,
        statvfs: Callable[[str], Any] = os.statvfs,
        on_storage_full: Callable[[], Any] | None = None,
    ) -> None:
        self.statvfs = statvfs
        #: Called once per full-disk event (emergency retention, when enabled).
        self.on_storage_full = on_storage_full or (lambda: None)
        self._disk_loop: LoopingCall | None = None
        self._sizes: dict[str, tuple[int, int]] = {}
        self.mediamtx = mediamtx
        self.cameras = cameras
        self.reactor = reactor
        self.clock = clock
        self.config = config
        self.store = store
        self.require_space = require_space
        self.publish = publish
        self.camera_changed_hook = camera_changed or (lambda camera: None)
        self.metrics = metrics
        self.path = os.path.join(config.storage.state_dir, STATE_FILE)
        self.upgrade_marker = os.path.join(config.storage.state_dir, UPGRADE_MARKER)
        self._writer = BackgroundWriter(reactor, self.path, mode=0o644, what="recording state")
        self.sessions: dict[str, Session] = {}
        self._pending_resume: dict[str, Session] = {}
        self._resume_timer: Any = None
        cameras.subscribe(self)
        monitor = getattr(mediamtx, "monitor", None)
        if monitor is not None:
            monitor.subscribe(self._mediamtx_event)

    # -- reading ------------------------------------------------------------------------

    def is_recording(self, camera_id: str) -> bool:
        session = self.sessions.get(camera_id)
        return session is not None and session.state in ("recording", "stopping")

    def protected(self) -> set:
        """``(kind, filename)`` of every segment being written (the newest of each session)."""
        out = set()
        for session in list(self.sessions.values()) + list(self._pending_resume.values()):
            files = self._session_files(session)
            if files:
                out.add((RECORDINGS, files[-1].filename))
        return out

    def status(self) -> dict:
        return {
            "active": [
                {
                    "camera_id": s.camera_id,
                    "session_id": s.session_id,
                    "state": s.state,
                    "start_time": s.start_time,
                    "duration": s.duration,
                    "filename": s.filename,
                    "reader_running": bool(s.reader and s.reader.running),
                    "reader_restarts": max(0, (s.reader.starts - 1)) if s.reader else 0,
                }
                for s in self.sessions.values()
            ],
            "resuming": sorted(self._pending_resume),
            "on_shutdown": self.config.recording.on_shutdown,
        }

    # -- start ----------------------------------------------------------------------------

    async def start(self, camera: Camera, *, duration: float | None = None, fmt: str | None = None) -> dict:
        cfg = self.config.recording
        if duration is not None and not 0 < duration <= cfg.max_duration:
            raise InvalidParams(
                f"Invalid params: 'duration' must be greater than 0 and at most {cfg.max_duration:g} seconds"
                " (recording.max_duration)",
                data={"param": "duration"},
            )
        camera_id = camera.camera_id
        existing = self.sessions.get(camera_id) or self._pending_resume.get(camera_id)
        if existing is not None:
            raise InvalidState(
                f"Camera {camera_id} is already recording (session {existing.session_id})",
                data={"device": camera_id, "session_id": existing.session_id, "state": existing.state},
            )
        current = self.cameras.get(camera_id) or camera
        if current.status != CONNECTED:
            raise CameraNotFound(
                f"Camera {camera_id} is {current.status.lower()}: it cannot record",
                data={"device": camera_id, "status": current.status},
            )
        self.require_space(RECORDINGS)
        session = Session(
            camera_id=camera_id,
            session_id=uuid.uuid4().hex,
            start_time=self.clock.seconds(),
            duration=duration,
            format=cfg.format,
            device=current.device,
            before={f.filename for f in self.store.list(RECORDINGS, camera_id)},
        )
        self.sessions[camera_id] = session
        try:
            await self.mediamtx.set_recording(camera_id, True)
            if self.sessions.get(camera_id) is not session:
                raise CameraNotFound(
                    f"Camera {camera_id} disconnected while the recording was starting",
                    data={"device": camera_id, "reason": "camera_disconnected"},
                )
            session.reader = self._reader(camera_id)
            session.reader.start()
            first = await self._first_segment(session)
        except Exception as exc:
            await self._abandon(session, exc)
            raise
        session.filename = first
        session.state = "recording"
        # The recording began when MediaMTX wrote its first segment: the time in its
        # name, which is MediaMTX's local time in a zone camsvc need not share (a
        # container in UTC).  The name is seconds old, so its offset from camsvc's
        # clock, rounded to a quarter hour, is MediaMTX's zone (learned every start).
        now = self.clock.seconds()
        offset = learn_utc_offset(first, now)
        if offset is not None:
            self.store.set_name_offset(RECORDINGS, offset)
            began = time_from_name(first, offset)
            if began is not None and now - 60.0 <= began <= now + 1.0:
                session.start_time = began
        session.steady_start = steady(self.clock) - (now - session.start_time)
        self._arm_timer(session)
        self._save()
        self._count("started")
        log.info(
            "Recording {session_id} of {camera_id} started: {filename}",
            session_id=session.session_id,
            camera_id=camera_id,
            filename=first,
        )
        self._notify(session, STARTED, duration=duration)
        return self._start_result(session)

    def _start_result(self, session: Session) -> dict:
        return {
            "device": session.device,
            "camera_id": session.camera_id,
            "session_id": session.session_id,
            "filename": session.filename,
            "status": STARTED,
            "start_time": session.start_time,
            "duration": session.duration,
            "format": session.format,
        }

    def _reader(self, camera_id: str) -> KeepAliveReader:
        port = self.config.mediamtx.rtsp_port
        values = {
            "rtsp_url": f"rtsp://127.0.0.1:{port}/{camera_id}",
            "rtsp_host": "127.0.0.1",
            "rtsp_port": port,
            "camera_id": camera_id,
        }
        argv = [part.format(**values) for part in shlex.split(self.config.recording.reader_command)]
        return KeepAliveReader(self.reactor, self.clock, argv, camera_id)

    async def _first_segment(self, session: Session) -> str:
        deadline = self.clock.seconds() + self.config.recording.start_timeout
        while True:
            files = self._session_files(session)
            if files:
                return files[0].filename
            if self.sessions.get(session.camera_id) is not session:
                raise CameraNotFound(
                    f"Camera {session.camera_id} disconnected while the recording was starting",
                    data={"device": session.camera_id, "reason": "camera_disconnected"},
                )
            if self.clock.seconds() >= deadline:
                raise RecordingFailed(
                    f"Recording on {session.camera_id} did not start: MediaMTX wrote no segment within"
                    f" {self.config.recording.start_timeout:g} s (the camera's stream did not come up)",
                    data={"reason": "no_segment"},
                )
            await deferLater(self.clock, POLL, lambda: None)

    def _session_files(self, session: Session) -> list:
        """The session's segments, oldest first, found without reading names as absolute times.

        New files are those that were not there when the session started
        (``before``); from the first segment on, those whose name sorts at or
        after it (one MediaMTX's names sort by time in whatever zone it writes
        them).  Only a resumed session that never saw its first segment falls
        back on the time in the names (2 s of slack, camsvc's zone).
        """
        files = [f for f in self.store.list(RECORDINGS, session.camera_id) if f.filename not in session.before]
        if session.filename:
            files = [f for f in files if f.filename >= session.filename]
        elif not session.before and session.state == "resuming":
            since = session.start_time - 2.0
            files = [f for f in files if f.created >= since]
        files.sort(key=lambda f: f.filename)
        return files

    async def _abandon(self, session: Session, exc: BaseException) -> None:
        """Undo a start that failed: record off, reader stopped, FAILED notified."""
        if self.sessions.get(session.camera_id) is session:
            del self.sessions[session.camera_id]
        if session.reader is not None:
            await session.reader.stop()
        try:
            await self.mediamtx.set_recording(session.camera_id, False)
        except Exception as off_exc:
            log.warn(
                "Could not switch recording off in MediaMTX for {camera_id} after a failed start: {err}",
                camera_id=session.camera_id,
                err=str(off_exc),
            )
        reason = exc.message if isinstance(exc, RpcError) else str(exc)
        if not isinstance(exc, RpcError):
            log.failure("Recording of {camera_id} failed to start", Failure(exc), camera_id=session.camera_id)
        self._count("failed")
        self._save()
        self._notify(session, FAILED, reason=reason, duration=0.0)

    def _arm_timer(self, session: Session) -> None:
        self._watch_disk_while_recording()  # every recording (started or resumed) arms its timer
        if session.duration is None:
            return
        remaining = session.start_time + session.duration - self.clock.seconds()
        if session.steady_start is not None:  # a clock step since the start does not count
            remaining = session.steady_start + session.duration - steady(self.clock)
        session.timer = self.clock.callLater(max(0.0, remaining), self._auto_stop, session)

    def _auto_stop(self, session: Session) -> None:
        session.timer = None
        if self.sessions.get(session.camera_id) is not session:
            return
        log.info(
            "Recording {session_id} of {camera_id} reached its duration",
            session_id=session.session_id,
            camera_id=session.camera_id,
        )
        d = Deferred.fromCoroutine(self._finish(session, STOPPED, "duration"))
        d.addErrback(lambda f: log.failure("Auto-stop of {camera_id} failed", f, camera_id=session.camera_id))

    # -- stop -------------------------------------------------------------------------------

    async def stop(self, camera: Camera) -> dict:
        camera_id = camera.camera_id
        session = self.sessions.get(camera_id)
        if session is None:
            pending = self._pending_resume.pop(camera_id, None)
            if pending is not None:
                self._cancel_resume_timer_if_idle()
                return await self._finish(pending, STOPPED, "requested")
            raise InvalidState(f"Camera {camera_id} is not recording", data={"device": camera_id})
        if session.state == "starting":
            raise InvalidState(f"Recording on {camera_id} is still starting; stop it once it has started")
        if session.state == "stopping":
            raise InvalidState(f"Recording on {camera_id} is already stopping")
        return await self._finish(session, STOPPED, "requested")

    async def _finish(self, session: Session, status: str, reason: str, *, tell_mediamtx: bool = True) -> dict:
        """End a session: record off, reader stopped, state cleared, notified; the stop result."""
        session.state = "stopping"
        if session.timer is not None and session.timer.active():
            session.timer.cancel()
        session.timer = None
        if tell_mediamtx:
            try:
                await self.mediamtx.set_recording(session.camera_id, False)
            except Exception as exc:
                # Desired state is off already: the reconciler applies it when MediaMTX is back.
                log.warn(
                    "MediaMTX was not told to stop recording {camera_id} now ({err}); it will be when it answers",
                    camera_id=session.camera_id,
                    err=exc.message if isinstance(exc, RpcError) else str(exc),
                )
        if session.reader is not None:
            await session.reader.stop()
        await deferLater(self.clock, SETTLE, lambda: None)
        if self.sessions.get(session.camera_id) is session:
            del self.sessions[session.camera_id]
        self._pending_resume.pop(session.camera_id, None)
        self._disk_watch_idle()
        end = self.clock.seconds()
        elapsed = end - session.start_time
        if session.steady_start is not None:  # the time it really recorded, whatever the clock did
            elapsed = steady(self.clock) - session.steady_start
        files = self._session_files(session)
        result = {
            "device": session.device,
            "camera_id": session.camera_id,
            "session_id": session.session_id,
            "filename": session.filename or (files[0].filename if files else None),
            "status": STOPPED,
            "start_time": session.start_time,
            "end_time": end,
            "duration": max(0.0, elapsed),
            "file_size": sum(f.size for f in files),
            "files": [f.filename for f in files],
            "reason": reason,
        }
        self._save()
        self._count("auto_stopped" if reason == "duration" else ("failed" if status == FAILED else "stopped"))
        log.info(
            "Recording {session_id} of {camera_id} {status} ({reason}): {count} segments, {size} bytes",
            session_id=session.session_id,
            camera_id=session.camera_id,
            status=status.lower(),
            reason=reason,
            count=len(files),
            size=result["file_size"],
        )
        self._notify(session, status, reason=reason, duration=result["duration"], filename=result["filename"])
        return result

    # -- cameras ---------------------------------------------------------------------------------

    def camera_added(self, camera: Camera) -> None:
        self._try_resume(camera.camera_id)

    def camera_changed(self, camera: Camera) -> None:
        self._try_resume(camera.camera_id)

    def camera_removed(self, camera: Camera) -> None:
        session = self.sessions.get(camera.camera_id)
        if session is None or session.state == "stopping":
            return
        log.warn(
            "Camera {camera_id} disconnected while recording {session_id}: finalising",
            camera_id=camera.camera_id,
            session_id=session.session_id,
        )
        if session.state == "starting":
            # start() is waiting for a segment: it sees the session gone and abandons (FAILED).
            del self.sessions[camera.camera_id]
            return
        d = Deferred.fromCoroutine(self._finish(session, FAILED, "camera_disconnected", tell_mediamtx=False))
        d.addErrback(lambda f: log.failure("Finalising {camera_id} failed", f, camera_id=camera.camera_id))

    # -- notifications and counting -------------------------------------------------------------

    def _notify(
        self,
        session: Session,
        status: str,
        *,
        reason: str | None = None,
        duration: Any = None,
        filename: str | None = None,
    ) -> None:
        params = {
            "device": session.device,
            "camera_id": session.camera_id,
            "status": status,
            "filename": filename if filename is not None else session.filename,
            "duration": duration,
            "session_id": session.session_id,
        }
        if reason is not None:
            params["reason"] = reason
        try:
            self.publish("recording_status_update", params)
        except Exception:
            log.failure("Publishing recording_status_update of {camera_id} failed", camera_id=session.camera_id)
        camera = self.cameras.get(session.camera_id)
        if camera is not None:
            try:
                self.camera_changed_hook(camera)
            except Exception:
                log.failure("Publishing the camera of {camera_id} failed", camera_id=session.camera_id)

    def _count(self, event: str) -> None:
        if self.metrics is None:
            return
        self.metrics.recording_event(event)
        self.metrics.recordings_active.set(sum(1 for s in self.sessions.values() if s.state != "starting"))

    # -- persistence and recovery -----------------------------------------------------------------

    def _save(self) -> None:
        data = {s.camera_id: s.persisted() for s in self.sessions.values() if s.state in ("recording", "stopping")}
        data.update({cid: s.persisted() for cid, s in self._pending_resume.items()})
        # off the reactor thread (common.writer): the reactor never waits on its fsync
        self._writer.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))

    def _load(self) -> list[Session]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.error("Ignoring unreadable recording state {path}: {err}", path=self.path, err=exc)
            return []
        sessions = []
        for camera_id, entry in data.items() if isinstance(data, dict) else []:
            try:
                sessions.append(
                    Session(
                        camera_id=str(camera_id),
                        session_id=str(entry["session_id"]),
                        start_time=float(entry["start_time"]),
                        duration=None if entry.get("duration") is None else float(entry["duration"]),
                        format=str(entry.get("format", "fmp4")),
                        filename=entry.get("filename"),
                        device=str(entry.get("device", "")),
                        state="resuming",
                    )
                )
            except (KeyError, TypeError, ValueError, AttributeError):
                log.error(
                    "Ignoring a malformed recording entry for {camera_id} in {path}",
                    camera_id=camera_id,
                    path=self.path,
                )
        return sessions

    def startService(self) -> None:
        super().startService()
        try:
            os.unlink(self.upgrade_marker)
            log.info("Started after a package upgrade ({marker} removed)", marker=self.upgrade_marker)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("Cannot remove {marker}: {err}", marker=self.upgrade_marker, err=exc)
        sessions = self._load()
        if not sessions:
            return
        deadline = self.clock.seconds() + self.config.recording.resume_timeout
        for session in sessions:
            session.resume_deadline = deadline
            session.before = set()
            self._pending_resume[session.camera_id] = session
            log.info(
                "Recording {session_id} of {camera_id} was active when camsvc stopped: resuming it",
                session_id=session.session_id,
                camera_id=session.camera_id,
            )
        self._resume_timer = self.clock.callLater(self.config.recording.resume_timeout, self._resume_expired)
        for camera_id in list(self._pending_resume):
            self._try_resume(camera_id)

    def _mediamtx_event(self, event: str, info: dict) -> None:
        if event in ("up", "restarted"):
            for camera_id in list(self._pending_resume):
                self._try_resume(camera_id)

    def _try_resume(self, camera_id: str) -> None:
        session = self._pending_resume.get(camera_id)
        if session is None or session.state != "resuming" or not self.running:
            return
        if not getattr(self.mediamtx, "available", False):
            return  # MediaMTX's "up" event retries
        camera = self.cameras.get(camera_id)
        if camera is None or camera.status != CONNECTED or not camera.default:
            return  # camera_added / camera_changed retries
        if session.duration is not None and self.clock.seconds() >= session.start_time + session.duration:
            del self._pending_resume[camera_id]
            self.sessions[camera_id] = session
            d = Deferred.fromCoroutine(self._finish(session, STOPPED, "duration"))
            d.addErrback(lambda f: log.failure("Finalising {camera_id} failed", f, camera_id=camera_id))
            return
        session.state = "starting"
        d = Deferred.fromCoroutine(self._resume(session, camera))
        d.addErrback(lambda f: log.failure("Resuming the recording of {camera_id} failed", f, camera_id=camera_id))

    async def _resume(self, session: Session, camera: Camera) -> None:
        camera_id = session.camera_id
        # What MediaMTX reports, asked before set_recording puts the flag back in camsvc's
        # desired state (which it does at once, so a reconcile pass cannot switch it off).
        reported = Deferred.fromCoroutine(self._record_flag(camera_id))
        try:
            await self.mediamtx.set_recording(camera_id, True)
        except Exception as exc:
            session.state = "resuming"  # retried on the next MediaMTX or camera event
            log.warn(
                "Cannot resume the recording of {camera_id} yet: {err}",
                camera_id=camera_id,
                err=exc.message if isinstance(exc, RpcError) else str(exc),
            )
            return
        kept = await reported
        if self._pending_resume.get(camera_id) is not session:
            return  # stopped meanwhile
        del self._pending_resume[camera_id]
        self._cancel_resume_timer_if_idle()
        session.device = camera.device
        session.state = "recording"
        # Resumed in a new process: the wall clock is all that links it to the start.
        session.steady_start = steady(self.clock) - (self.clock.seconds() - session.start_time)
        session.reader = self._reader(camera_id)
        session.reader.start()
        self.sessions[camera_id] = session
        self._arm_timer(session)
        self._save()
        self._count("resumed")
        log.info(
            "Recording {session_id} of {camera_id} resumed (MediaMTX had {what})",
            session_id=session.session_id,
            camera_id=camera_id,
            what={True: "kept recording", False: "stopped recording", None: "no such path"}[kept],
        )
        self._notify(session, STARTED, reason="resumed", duration=session.duration)

    async def _record_flag(self, camera_id: str) -> bool | None:
        client = getattr(self.mediamtx, "client", None)
        if client is None:
            return None
        try:
            conf = await client.get_path_config(camera_id)
        except Exception as exc:
            log.debug("No MediaMTX path config for {camera_id}: {err}", camera_id=camera_id, err=str(exc))
            return None
        return bool(conf.get("record"))

    def _resume_expired(self) -> None:
        self._resume_timer = None
        for camera_id, session in list(self._pending_resume.items()):
            if session.state != "resuming":
                continue
            del self._pending_resume[camera_id]
            log.warn(
                "Recording {session_id} of {camera_id} could not be resumed within {timeout:g} s: finalised",
                session_id=session.session_id,
                camera_id=camera_id,
                timeout=self.config.recording.resume_timeout,
            )
            self.sessions[camera_id] = session
            d = Deferred.fromCoroutine(self._finish(session, FAILED, "not_resumable"))
            d.addErrback(lambda f, cid=camera_id: log.failure("Finalising {camera_id} failed", f, camera_id=cid))

    def _cancel_resume_timer_if_idle(self) -> None:
        if not self._pending_resume and self._resume_timer is not None and self._resume_timer.active():
            self._resume_timer.cancel()
            self._resume_timer = None

    # -- shutdown ------------------------------------------------------------------------------------

    # -- a full disk ---------------------------------------------------------------------------

    def _watch_disk_while_recording(self) -> None:
        """Run the full-disk check while something records (and only then: no idle timer)."""
        if self._disk_loop is None and self.running:
            self._disk_loop = LoopingCall(self._watch_disk)
            self._disk_loop.clock = self.clock
            self._disk_loop.start(self.config.recording.disk_check_interval, now=False).addErrback(
                lambda f: log.failure("The full-disk check stopped", f)
            )

    def _disk_watch_idle(self) -> None:
        if not any(s.state in ("starting", "recording") for s in self.sessions.values()):
            loop, self._disk_loop = self._disk_loop, None
            if loop is not None and loop.running:
                loop.stop()

    def _watch_disk(self) -> None:
        """While something records, check the recordings file system every disk_check_interval."""
        recording = [s for s in self.sessions.values() if s.state == "recording"]
        if not recording:
            self._sizes.clear()
            self._disk_watch_idle()
            return
        directory = self.config.storage.recordings_dir
        try:
            st = self.statvfs(directory)
        except OSError as exc:
            log.warn("Cannot check free space in {dir}: {err}", dir=directory, err=exc)
            return
        free = st.f_bavail * st.f_frsize
        limit = self.config.recording.min_free_bytes
        stalled = []
        for session in recording:
            files = self._session_files(session)
            size = files[-1].size if files else 0
            last, still = self._sizes.get(session.camera_id, (size, 0))
            still = still + 1 if size == last else 0
            self._sizes[session.camera_id] = (size, still)
            # No byte left and a segment that stopped growing: MediaMTX's writes fail.
            if still >= 2 and free < max(limit, st.f_frsize * 4):
                stalled.append(session)
        if free >= limit and not stalled:
            return
        reason = "storage_full"
        log.error(
            "The recordings file system is full ({free} bytes free in {dir}, recording.min_free_bytes {limit}): "
            "stopping {count} recording(s) with FAILED",
            free=free,
            dir=directory,
            limit=limit,
            count=len(recording),
        )
        for session in recording:
            self._sizes.pop(session.camera_id, None)
            d = Deferred.fromCoroutine(self._finish(session, FAILED, reason))
            d.addErrback(lambda f, cid=session.camera_id: log.failure("Stopping {camera_id} failed", f, camera_id=cid))
        try:
            self.on_storage_full()
        except Exception:
            log.failure("Emergency retention after a full disk failed")

    def stopService(self) -> Any:
        super().stopService()
        if self._disk_loop is not None and self._disk_loop.running:
            self._disk_loop.stop()
        self._disk_loop = None
        if self._resume_timer is not None and self._resume_timer.active():
            self._resume_timer.cancel()
        self._resume_timer = None
        keep = self.config.recording.on_shutdown == "keep"
        upgrade = os.path.exists(self.upgrade_marker)
        if upgrade and not keep and self.config.recording.on_upgrade == "keep":
            keep = True
            if self.sessions:
                log.info("Stopping for a package upgrade: recordings are kept and resume after the restart")
        waits = []
        for session in list(self.sessions.values()):
            if session.timer is not None and session.timer.active():
                session.timer.cancel()
            session.timer = None
            if keep or session.state != "recording":
                if session.reader is not None:
                    waits.append(session.reader.stop())
                continue
            d = Deferred.fromCoroutine(self._finish(session, STOPPED, "shutdown"))
            d.addErrback(lambda f, cid=session.camera_id: log.failure("Stopping {camera_id} failed", f, camera_id=cid))
            waits.append(d)
        if keep and self.sessions:
            log.info(
                "Leaving {count} recordings to MediaMTX (recording.{key}: keep); they resume at the next start",
                count=len(self.sessions),
                key="on_upgrade" if upgrade and self.config.recording.on_shutdown != "keep" else "on_shutdown",
            )
        done = DeferredList(waits)
        done.addBoth(lambda _: self._writer.drain())  # the last state is on disk when stopped
        return done
