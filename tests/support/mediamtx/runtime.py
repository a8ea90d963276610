"""Per-path runtime of the MediaMTX stand-in: readers, the on-demand publisher, the recorder writing segment files."""

from __future__ import annotations

import datetime as _dt
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from tests.support.mediamtx.gojson import go_time, parse_go_duration
from tests.support.mediamtx.recordpath import render_record_path

if TYPE_CHECKING:
    from tests.support.mediamtx.standin import MediaMTXStandIn

log = Logger()

# ---------------------------------------------------------------------------
# Runtime: readers, on-demand publisher, recorder
# ---------------------------------------------------------------------------


class PathNotServed(Exception):
    """A reader asked for a path that cannot be read (RTSP 404)."""


@dataclass(eq=False)
class Reader:
    """One reader of a path (an RTSP connection or a Python-API handle)."""

    path: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    active: bool = False
    kick: Callable[[], None] | None = None
    _outcome: Exception | bool | None = None
    _waiters: list = field(default_factory=list)

    def when_ready(self) -> defer.Deferred:
        """Fires (with the reader) once the path serves it; fails with
        :class:`PathNotServed` if it never will (closed, detached)."""
        if self._outcome is True:
            return defer.succeed(self)
        if isinstance(self._outcome, Exception):
            return defer.fail(self._outcome)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def _settle(self, outcome: Exception | bool) -> None:
        if self._outcome is not None:
            return
        self._outcome = outcome
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(outcome) if isinstance(outcome, Exception) else d.callback(self)


class _Recorder:
    """Writes fMP4 segments for one ready path whose config says ``record: true``."""

    def __init__(self, standin: MediaMTXStandIn, runtime: _PathRuntime):
        self.standin = standin
        self.runtime = runtime
        self.segments: list[Path] = []
        self._file: Path | None = None
        self._seg_start = 0.0
        self._next_frag = 0
        self.write_errors = 0
        self._loop: LoopingCall | None = None
        self._init, self._frags = self._source()

    def _source(self) -> tuple[bytes, list[bytes]]:
        """The init part and the fragments it records from: the stand-in's clip."""
        return self.standin._clip_parts()

    def _conf(self) -> dict:
        return self.runtime.conf

    def start(self) -> None:
        self._new_segment()
        part = parse_go_duration(self._conf()["recordPartDuration"] or "1s") / 1e9
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.standin.reactor
        self._loop.start(min(max(part, 0.05), 1.0), now=False)

    def _new_segment(self, data: bytes | None = None) -> None:
        now = self.standin.reactor.seconds()
        conf = self._conf()
        # MediaMTX renders recordPath in its own local time zone (a container's is often UTC).
        t = _dt.datetime.fromtimestamp(now, tz=self.standin.timezone).astimezone(self.standin.timezone)
        pattern = conf["recordPath"] + (".mp4" if conf["recordFormat"] == "fmp4" else ".ts")
        target = self.standin._abs_record_path(render_record_path(pattern, self.runtime.name, t))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as f:
                if data is not None:
                    f.write(data)
                else:
                    f.write(self._init)
                    if self._frags:
                        f.write(self._frags[0])
        except OSError as exc:
            log.error(
                "[path {path}] [record] cannot create {file}: {err}",
                path=self.runtime.name,
                file=str(target),
                err=exc.strerror,
            )
            self.write_errors += 1
            self._seg_start = now  # tried again after a segment duration, like a failed segment
            return
        self._file = target
        self._seg_start = now
        self._next_frag = 1
        self.segments.append(target)
        log.info(
            "recording segment {file} of {path}",
            file=str(target),
            path=self.runtime.name,
        )

    def _tick(self) -> None:
        seg = parse_go_duration(self._conf()["recordSegmentDuration"] or "1h") / 1e9
        if self.standin.reactor.seconds() - self._seg_start >= seg:
            self._new_segment()
            return
        if self._file is not None and self._next_frag < len(self._frags):
            if self._append(self._frags[self._next_frag]):
                self._next_frag += 1

    def _append(self, frag: bytes) -> bool:
        """Append one whole fragment to the current segment (False: the write failed)."""
        try:
            fd = os.open(self._file, os.O_WRONLY | os.O_APPEND)
            try:
                size = os.fstat(fd).st_size
                view = memoryview(frag)
                try:
                    while view:
                        view = view[os.write(fd, view) :]
                except OSError:
                    os.ftruncate(fd, size)  # a fragment is written whole or not at all
                    raise
            finally:
                os.close(fd)
        except OSError as exc:
            # MediaMTX logs the failed write and keeps the recorder running.
            log.error("[path {path}] [record] write failed: {err}", path=self.runtime.name, err=exc.strerror)
            self.write_errors += 1
            return False
        return True

    def stop(self) -> None:
        """Finalise: the segment on disk is a complete fMP4 file; stop growing it."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        self._file = None


class _LiveRecorder(_Recorder):
    """Publish mode: writes what the path's real publisher sends (see :mod:`.publish`).

    Fed whole fMP4 fragments (one per keyframe) by the publish session; a
    segment is the init part and the fragments from one keyframe on, a new one
    once ``recordSegmentDuration`` has passed, as MediaMTX cuts them.
    """

    def __init__(self, standin: MediaMTXStandIn, runtime: _PathRuntime):
        super().__init__(standin, runtime)
        self._stopped = False

    def _source(self) -> tuple[bytes, list[bytes]]:
        return b"", []  # no clip: the publisher's fragments arrive as they are sent

    def start(self) -> None:
        pass  # the first fragment opens the first segment

    def feed(self, init: bytes, frag: bytes) -> None:
        if self._stopped:
            return
        seg = parse_go_duration(self._conf()["recordSegmentDuration"] or "1h") / 1e9
        if self._file is None or self.standin.reactor.seconds() - self._seg_start >= seg:
            self._file = None
            self._new_segment(init + frag)
        else:
            self._append(frag)

    def stop(self) -> None:
        self._stopped = True
        self._file = None


class _PathRuntime:
    """Run-time state of one configured path (what ``/v3/paths`` shows)."""

    BYTES_PER_SECOND = 250_000

    def __init__(self, standin: MediaMTXStandIn, name: str, conf: dict):
        self.standin = standin
        self.name = name
        self.conf = conf
        self.readers: list[Reader] = []  # everyone who asked, active or waiting
        self.ready = False
        self.on_demand = False
        self.ready_time: _dt.datetime | None = None
        self.source_id = ""
        self._bytes_in = 0.0
        self._bytes_out = 0.0
        self._counted_until = standin.reactor.seconds()
        self._start_call = None
        self._close_call = None
        self.recorder: _Recorder | None = None
        #: Publish mode: the runOnDemand command and the publisher's session.
        self.command = None
        self.publish_session = None

    def _advance(self) -> None:
        """Bring the byte counters up to now (they grow while the path is ready)."""
        now = self.standin.reactor.seconds()
        elapsed = max(0.0, now - self._counted_until)
        self._counted_until = now
        if self.ready:
            self._bytes_in += elapsed * self.BYTES_PER_SECOND
            self._bytes_out += elapsed * self.BYTES_PER_SECOND * len(self.active_readers())

    def active_readers(self) -> list[Reader]:
        return [r for r in self.readers if r.active]

    def api_item(self) -> dict:
        self._advance()
        rt = go_time(self.ready_time) if self.ready and self.ready_time else None
        return {
            "name": self.name,
            "confName": self.name,
            "source": {"type": "rtspSession", "id": self.source_id} if self.ready else None,
            "ready": self.ready,
            "readyTime": rt,
            "available": self.ready,
            "availableTime": rt,
            "online": self.ready,
            "onlineTime": rt,
            "tracks": ["H264"] if self.ready else [],
            "tracks2": (
                [
                    {
                        "codec": "H264",
                        "codecProps": {
                            "width": 320,
                            "height": 240,
                            "profile": "Constrained Baseline",
                            "level": "1.3",
                        },
                    }
                ]
                if self.ready
                else []
            ),
            "bytesReceived": int(self._bytes_in),
            "bytesSent": int(self._bytes_out),
            "inboundBytes": int(self._bytes_in),
            "inboundFramesInError": 0,
            "outboundBytes": int(self._bytes_out),
            "readers": [{"type": "rtspSession", "id": r.id} for r in self.active_readers()],
        }

    # -- readers / publisher -------------------------------------------------

    def add_reader(self, reader: Reader) -> None:
        self._advance()
        if not self.ready and not self.conf["runOnDemand"]:
            raise PathNotServed(f"no one is publishing to path '{self.name}'")
        self.readers.append(reader)
        self._cancel_close()
        if self.ready:
            self._activate(reader)
        elif self.standin.publishers:
            if self.command is None and self.conf["runOnDemand"]:
                from tests.support.mediamtx.publish import OnDemandCommand

                self.command = OnDemandCommand(self, self.conf["runOnDemand"])
                self.command.start()
        elif self._start_call is None:
            log.info(
                "runOnDemand of {path}: starting {cmd!r}",
                path=self.name,
                cmd=self.conf["runOnDemand"],
            )
            self._start_call = self.standin.reactor.callLater(self.standin.publish_delay, self._on_demand_ready)

    def _activate(self, reader: Reader) -> None:
        reader.active = True
        reader._settle(True)

    def _on_demand_ready(self) -> None:
        self._start_call = None
        self.on_demand = True
        self.set_ready()

    def set_ready(self) -> None:
        self._advance()
        if not self.ready:
            self.ready = True
            self.source_id = str(uuid.uuid4())
            self.ready_time = _dt.datetime.fromtimestamp(self.standin.reactor.seconds()).astimezone()
        for r in self.readers:
            self._activate(r)
        self.update_recording()

    def set_not_ready(self) -> None:
        self._advance()
        self.ready = False
        self.on_demand = False
        self.ready_time = None
        for r in self.readers:
            r.active = False
        self.update_recording()

    def remove_reader(self, reader: Reader) -> None:
        self._advance()
        if reader in self.readers:
            self.readers.remove(reader)
        reader.active = False
        reader._settle(PathNotServed("reader left"))
        if self.readers:
            return
        if self._start_call is not None:
            self._start_call.cancel()
            self._start_call = None
        elif self.command is not None and not self.ready:
            self._stop_command()
        elif self.on_demand and self.ready and self._close_call is None:
            after = parse_go_duration(self.conf["runOnDemandCloseAfter"] or "0s") / 1e9
            self._close_call = self.standin.reactor.callLater(after, self._close_on_demand)

    def _cancel_close(self) -> None:
        if self._close_call is not None:
            self._close_call.cancel()
            self._close_call = None

    def _close_on_demand(self) -> None:
        self._close_call = None
        log.info("runOnDemand of {path}: stopping (no readers)", path=self.name)
        if self.standin.publishers:
            self._stop_command()
        self.set_not_ready()

    # -- publish mode (see tests.support.mediamtx.publish) ---------------------

    def _stop_command(self) -> None:
        command, self.command = self.command, None
        if command is not None:
            command.stop()
        session, self.publish_session = self.publish_session, None
        if session is not None:
            session.publisher_lost()

    def publisher_ready(self, session) -> None:
        """A publisher's RECORD was accepted: it is the path's source now."""
        old, self.publish_session = self.publish_session, session
        if old is not None and old is not session:
            old.publisher_lost()  # overridePublisher: the new one wins
        self.set_ready()
        self.on_demand = self.command is not None

    def publisher_gone(self, session) -> None:
        """The publisher's session ended: the path is not ready, its segment closed."""
        if self.publish_session is not session:
            return
        self.publish_session = None
        log.info("[path {path}] publisher gone: path not ready", path=self.name)
        self.set_not_ready()

    def command_gone(self, command) -> None:
        if self.command is command:
            self.command = None

    def update_recording(self) -> None:
        want = self.ready and bool(self.conf["record"])
        if want and self.recorder is None:
            cls = _LiveRecorder if self.standin.publishers else _Recorder
            self.recorder = cls(self.standin, self)
            self.standin._recorders_seen.setdefault(self.name, []).append(self.recorder)
            self.recorder.start()
        elif not want and self.recorder is not None:
            self.recorder.stop()
            self.recorder = None

    def close(self) -> None:
        """The path is removed or re-created: kick readers, stop everything."""
        for c in (self._start_call, self._close_call):
            if c is not None and c.active():
                c.cancel()
        self._start_call = self._close_call = None
        self._stop_command()
        self.set_not_ready()
        for r in list(self.readers):
            self.readers.remove(r)
            r._settle(PathNotServed("path closed"))
            if r.kick:
                r.kick()
