"""Publish mode of the MediaMTX stand-in: each path's real ``runOnDemand`` publisher, and what it sends recorded.

Off by default (``MediaMTXStandIn(publishers=True)``, ``--publishers``).  In this
mode the stand-in does for a path what MediaMTX does for a real publisher:

* a reader of an on-demand path starts its ``runOnDemand`` command, unchanged,
  as MediaMTX's ``externalcmd`` does (``/bin/sh -c "exec CMD"`` with ``MTX_PATH``
  and ``RTSP_PORT`` in the environment); while readers remain and
  ``runOnDemandRestart`` is on, a command that exits is started again after
  MediaMTX's 5 s restart pause; without readers it gets SIGINT;
* the publisher's ``ANNOUNCE`` on the stand-in's RTSP port hands that TCP
  connection over to a per-session ``ffmpeg -rtsp_flags listen`` on a private
  loopback port (every byte spliced both ways, so the publisher speaks to a real
  RTSP server, over UDP or TCP as it chooses); the path becomes ready when that
  server answers the publisher's ``RECORD``;
* the listener remuxes the stream (``-c copy``) to fragmented MP4 on its stdout:
  an init part (``ftyp`` + ``moov``) and one ``moof`` + ``mdat`` fragment per
  keyframe; the path's recorder (:class:`~tests.support.mediamtx.runtime._LiveRecorder`)
  writes them to segments named by ``recordPath``, a new one (init + fragment)
  once ``recordSegmentDuration`` has passed;
* when the publisher goes (its process died, the device was unplugged, the
  connection dropped), the listener is interrupted, writes out what it still
  holds, and the path becomes not ready: the current segment ends with whole
  fragments, readable (ffprobe) like the segment MediaMTX closes.

Collaborators: the stand-in's reactor (``IReactorProcess``, ``IReactorTCP``,
``IReactorTime``) and ffmpeg on ``PATH``.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import Logger

if TYPE_CHECKING:
    from tests.support.mediamtx.runtime import _PathRuntime

log = Logger()

#: MediaMTX's externalcmd pause before a command that exited is started again.
RESTART_PAUSE = 5.0
#: Seconds a signalled child gets before SIGKILL.
KILL_AFTER = 5.0
#: Seconds the listener gets to start listening on its private port.
LISTEN_TIMEOUT = 15.0


def _signal(transport, sig: str) -> None:
    try:
        transport.signalProcess(sig)
    except Exception:  # noqa: BLE001 - already gone (ProcessExitedAlready, OSError)
        pass


class _ChildProtocol(ProcessProtocol):
    """A child process of publish mode: stderr logged, the end reported."""

    def __init__(self, what: str, ended):
        self.what = what
        self.ended = ended
        self.done = False
        self._kill = None

    def errReceived(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace").strip()
        if text:
            log.info("[{what}] {text}", what=self.what, text=text[-500:])

    def interrupt(self, reactor) -> None:
        """SIGINT now, SIGKILL after :data:`KILL_AFTER` if still running."""
        if self.done or self.transport is None:
            return
        _signal(self.transport, "INT")
        if self._kill is None:
            self._kill = reactor.callLater(KILL_AFTER, lambda: _signal(self.transport, "KILL"))

    def processEnded(self, reason) -> None:
        self.done = True
        if self._kill is not None and self._kill.active():
            self._kill.cancel()
        self._kill = None
        self.ended(reason)


class OnDemandCommand:
    """The path's ``runOnDemand`` command while the path wants a publisher."""

    def __init__(self, runtime: _PathRuntime, command: str):
        self.runtime = runtime
        self.reactor = runtime.standin.reactor
        self.command = command
        self.wanted = True
        self.proto: _ChildProtocol | None = None
        self._restart = None
        self.starts = 0

    def start(self) -> None:
        self._restart = None
        if not self.wanted:
            return
        env = dict(os.environ)
        env.update(
            {
                "MTX_PATH": self.runtime.name,
                "MTX_QUERY": "",
                "RTSP_PORT": str(self.runtime.standin.rtsp_port),
            }
        )
        self.proto = _ChildProtocol(f"path {self.runtime.name}] [runOnDemand", self._ended)
        self.starts += 1
        log.info("[path {path}] runOnDemand command started", path=self.runtime.name)
        self.reactor.spawnProcess(
            self.proto, "/bin/sh", ["/bin/sh", "-c", "exec " + self.command], env=env, childFDs={0: "w", 1: "r", 2: "r"}
        )
        self.proto.transport.closeStdin()

    def _ended(self, reason) -> None:
        self.proto = None
        log.info(
            "[path {path}] runOnDemand command exited: {why}", path=self.runtime.name, why=reason.getErrorMessage()
        )
        if self.wanted and self.runtime.conf.get("runOnDemandRestart"):
            self._restart = self.reactor.callLater(RESTART_PAUSE, self.start)
        else:
            self.wanted = False
            self.runtime.command_gone(self)

    def stop(self) -> None:
        self.wanted = False
        if self._restart is not None and self._restart.active():
            self._restart.cancel()
        self._restart = None
        if self.proto is not None:
            log.info("[path {path}] runOnDemand command stopped", path=self.runtime.name)
            self.proto.interrupt(self.reactor)


class _ListenerOutput(_ChildProtocol):
    """The listener's stdout: fragmented MP4, cut into init and fragments."""

    def __init__(self, session: PublishSession):
        super().__init__(f"path {session.runtime.name}] [listener", session.listener_ended)
        self.session = session
        self.buffer = b""
        self.fragment = b""

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 8:
            size = int.from_bytes(self.buffer[:4], "big")
            kind = self.buffer[4:8]
            if size == 1:
                if len(self.buffer) < 16:
                    return
                size = int.from_bytes(self.buffer[8:16], "big")
            if size < 8:  # "to the end of the file": not in a fragmented stream
                self.buffer = b""
                return
            if len(self.buffer) < size:
                return
            box, self.buffer = self.buffer[:size], self.buffer[size:]
            if kind in (b"ftyp", b"moov"):
                self.session.init += box
            elif kind == b"moof":
                self.fragment = box
            elif kind == b"mdat" and self.fragment:
                frag, self.fragment = self.fragment + box, b""
                self.session.fragment(frag)


class _ToListener(Protocol):
    def __init__(self, session: PublishSession):
        self.session = session

    def connectionMade(self) -> None:
        self.session.listener_connected(self)

    def dataReceived(self, data: bytes) -> None:
        self.session.from_listener(data)

    def connectionLost(self, reason) -> None:
        self.session.listener_connection_lost()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PublishSession:
    """One publisher's RTSP session on a path, spliced to its private listener."""

    def __init__(self, runtime: _PathRuntime, front, cseq: int = 1):
        self.runtime = runtime
        self.reactor = runtime.standin.reactor
        self.front = front  # the publisher's connection (an _RTSPReaderProtocol)
        self.port = _free_port()
        self.init = b""
        self.fragments = 0
        self.ready = False
        self.ended = False
        self._record_asked = False
        # The front answered the requests before ANNOUNCE (OPTIONS); the listener
        # counts CSeq from 1, so it gets those again and its replies are dropped.
        self._pending: list[bytes] = [
            f"OPTIONS rtsp://127.0.0.1:{self.port}/{runtime.name} RTSP/1.0\r\nCSeq: {n}\r\n\r\n".encode()
            for n in range(1, cseq)
        ]
        self._swallow = len(self._pending)
        self._from_listener = b""
        self._conn: _ToListener | None = None
        self._deadline = self.reactor.seconds() + LISTEN_TIMEOUT
        url = f"rtsp://127.0.0.1:{self.port}/{runtime.name}"
        argv = [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-rtsp_flags",
            "listen",
            "-i",
            url,
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-f",
            "mp4",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
            "pipe:1",
        ]
        self.listener = _ListenerOutput(self)
        self.reactor.spawnProcess(self.listener, argv[0], argv, env=dict(os.environ), childFDs={0: "w", 1: "r", 2: "r"})
        self.listener.transport.closeStdin()
        self._try_connect()

    # -- the splice ------------------------------------------------------------

    def _try_connect(self) -> None:
        if self.ended:
            return
        d = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.port, timeout=5).connect(
            Factory.forProtocol(lambda: _ToListener(self))
        )

        def failed(f):
            if self.ended or self.listener.done:
                return None
            if self.reactor.seconds() >= self._deadline:
                log.error("[path {path}] listener never listened", path=self.runtime.name)
                self.publisher_lost()
                return None
            self.reactor.callLater(0.1, self._try_connect)
            return None

        d.addErrback(failed)

    def listener_connected(self, conn: _ToListener) -> None:
        if self.ended:
            conn.transport.loseConnection()
            return
        self._conn = conn
        pending, self._pending = self._pending, []
        for data in pending:
            conn.transport.write(data)

    def from_publisher(self, data: bytes) -> None:
        if b"RECORD " in data:
            self._record_asked = True
        if self._conn is not None:
            self._conn.transport.write(data)
        else:
            self._pending.append(data)

    def from_listener(self, data: bytes) -> None:
        if self._swallow:
            self._from_listener += data
            while self._swallow and b"\r\n\r\n" in self._from_listener:
                self._from_listener = self._from_listener.partition(b"\r\n\r\n")[2]
                self._swallow -= 1
            if self._swallow:
                return
            data, self._from_listener = self._from_listener, b""
            if not data:
                return
        if self.front.transport is not None:
            self.front.transport.write(data)
        if self._record_asked and not self.ready and b"RTSP/1.0 200" in data:
            self.ready = True
            log.info("[path {path}] is publishing to path (RTSP, spliced)", path=self.runtime.name)
            self.runtime.publisher_ready(self)

    def listener_connection_lost(self) -> None:
        self._conn = None
        if not self.ended and self.front.transport is not None:
            self.front.transport.loseConnection()

    # -- media -----------------------------------------------------------------

    def fragment(self, frag: bytes) -> None:
        self.fragments += 1
        if self.runtime.publish_session is self and self.runtime.recorder is not None and self.init:
            self.runtime.recorder.feed(self.init, frag)

    # -- the end -----------------------------------------------------------------

    def publisher_lost(self) -> None:
        """The publisher's connection is gone (or must go): the listener writes
        out what it holds and ends, then the path is not ready."""
        if self._conn is not None:
            self._conn.transport.loseConnection()
        self.listener.interrupt(self.reactor)
        if self.listener.done:
            self.listener_ended(None)

    def listener_ended(self, _reason) -> None:
        if self.ended:
            return
        self.ended = True
        if self.front.transport is not None:
            self.front.transport.loseConnection()
        self.runtime.publisher_gone(self)
