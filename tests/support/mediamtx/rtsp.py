"""Just enough RTSP for the MediaMTX stand-in to know that a reader is attached."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from tests.support.mediamtx.runtime import PathNotServed, Reader

if TYPE_CHECKING:
    from tests.support.mediamtx.standin import MediaMTXStandIn

log = Logger()

# ---------------------------------------------------------------------------
# RTSP: just enough for "a reader is attached"
# ---------------------------------------------------------------------------


class _RTSPReaderProtocol(Protocol):
    """A TCP connection that asks for a path counts as one reader of it."""

    def __init__(self, standin: MediaMTXStandIn):
        self.standin = standin
        self.buffer = b""
        self.reader: Reader | None = None
        self.publishing = None  # publish mode: the PublishSession this connection was handed to
        self.lost = defer.Deferred()

    def connectionMade(self):
        self.standin._rtsp_conns.add(self)

    def dataReceived(self, data):
        if self.publishing is not None:
            self.publishing.from_publisher(data)
            return
        self.buffer += data
        while self.publishing is None and b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(rest) < length:
                return
            raw = self.buffer[: len(head) + 4 + length]
            self.buffer = rest[length:]
            self._request(lines[0], headers, raw)
        if self.publishing is not None and self.buffer:
            rest, self.buffer = self.buffer, b""
            self.publishing.from_publisher(rest)

    def _reply(self, status: str, cseq: str, extra: str = "", body: bytes = b""):
        if self.transport is None or not self.transport.connected:
            return
        head = f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\nServer: gortsplib\r\n{extra}"
        if body:
            head += f"Content-Length: {len(body)}\r\n"
        self.transport.write(head.encode("latin-1") + b"\r\n" + body)

    def _request(self, line: str, headers: dict, raw: bytes = b""):
        cseq = headers.get("cseq", "0")
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("RTSP/"):
            self._reply("400 Bad Request", cseq)
            return
        method, url = parts[0].upper(), parts[1]
        if method == "OPTIONS":
            self._reply(
                "200 OK",
                cseq,
                "Public: DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, GET_PARAMETER, TEARDOWN\r\n",
            )
            return
        if self.reader is not None:
            self._reply("200 OK", cseq, "Session: 12345678;timeout=60\r\n")
            return
        name = unquote(urlsplit(url).path).strip("/")
        if method == "ANNOUNCE" and self.standin.publishers:
            self._publish(name, cseq, raw)
            return
        if method == "SETUP" and "/" in name:
            name = name.rsplit("/", 1)[0]
        try:
            self.reader = self.standin._attach(name, kick=self.transport.loseConnection)
        except PathNotServed as e:
            log.info("RTSP reader of {path} refused: {err}", path=name, err=str(e))
            self._reply("404 Not Found", cseq)
            return
        sdp = (
            b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=Stream\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
            b"m=video 0 RTP/AVP 96\r\na=control:trackID=0\r\na=rtpmap:96 H264/90000\r\n"
        )
        self.reader.when_ready().addCallbacks(
            lambda _: self._reply(
                "200 OK",
                cseq,
                f"Content-Base: {url}/\r\nContent-Type: application/sdp\r\n",
                sdp,
            ),
            lambda f: (self._reply("404 Not Found", cseq), None)[1],
        )

    def _publish(self, name: str, cseq: str, raw: bytes) -> None:
        """Publish mode: hand this connection (from its ANNOUNCE on) to a real RTSP server."""
        from tests.support.mediamtx.publish import PublishSession

        rt = self.standin._runtimes.get(name) if self.standin.running else None
        if rt is None:
            log.info("RTSP publisher of {path} refused: not configured", path=name)
            self._reply("404 Not Found", cseq)
            return
        self.publishing = PublishSession(rt, self, int(cseq) if cseq.isdigit() else 1)
        self.publishing.from_publisher(raw)

    def connectionLost(self, reason):
        self.standin._rtsp_conns.discard(self)
        if self.publishing is not None:
            self.publishing.publisher_lost()
        if self.reader is not None:
            reader, self.reader = self.reader, None
            self.standin.detach_reader(reader)
        self.lost.callback(None)


class _RTSPFactory(Factory):
    def __init__(self, standin):
        self.standin = standin

    def buildProtocol(self, addr):
        return _RTSPReaderProtocol(self.standin)
