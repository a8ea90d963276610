"""The WebSocket frame layer: camsvc's own fast path and Autobahn's general parser agree.

camsvc parses whole, unfragmented, masked text frames itself (camsvc.server.ws) and hands
everything else to Autobahn.  These tests speak RFC 6455 byte by byte over a socket to a real
camsvc under twistd, so each frame shape takes the path it takes in production: many frames in
one read, frames split across reads, 16- and 64-bit lengths, control frames in between,
fragmented messages, and the failures (invalid UTF-8 -> 1007 on both paths, unmasked or
non-minimally encoded frames -> 1002).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from camsvc.server.ws import _unmask, text_frame
from tests.support.server import ServiceProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServiceProcess(tmp_path_factory.mktemp("frames"), {"server": {"max_message_size": 200000}})
    proc.start()
    yield proc
    proc.stop_cleanly()


def frame(payload: bytes, *, opcode: int = 1, fin: bool = True, mask: bytes | None = None, length: str = "min"):
    """A client frame; ``length`` "min" (shortest encoding), "16" or "64" forces the field."""
    mask = os.urandom(4) if mask is None else mask
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    masked = 0x80 if mask != b"" else 0
    if length == "min" and n < 126:
        head = bytes((b0, masked | n))
    elif length == "16" or (length == "min" and n < 65536):
        head = struct.pack("!BBH", b0, masked | 126, n)
    else:
        head = struct.pack("!BBQ", b0, masked | 127, n)
    if not mask:
        return head + payload
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


class Raw:
    """A WebSocket client socket that writes exactly the bytes it is given."""

    def __init__(self, server):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, data: bytes, *, chunk: int | None = None) -> None:
        if chunk is None:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), chunk):
            self.sock.sendall(data[i : i + chunk])
            time.sleep(0.002)

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            more = self.sock.recv(65536)
            if not more:
                raise EOFError("connection closed")
            self.buf += more

    def recv_frame(self) -> tuple[int, bytes]:
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames are not masked"
        n, head = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, head = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, head = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(head + n)
        payload, self.buf = self.buf[head : head + n], self.buf[head + n :]
        assert b0 & 0x80, "server messages are unfragmented"
        return b0 & 0x0F, payload

    def recv_json(self):
        opcode, payload = self.recv_frame()
        assert opcode == 1, (opcode, payload)
        return json.loads(payload)

    def recv_close(self) -> int:
        while True:
            opcode, payload = self.recv_frame()
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0]

    def close(self) -> None:
        self.sock.close()


def ping(i) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": "ping", "id": i}).encode()


@pytest.fixture
def raw(server):
    r = Raw(server)
    yield r
    r.close()


def test_unmask_and_text_frame():
    mask = b"\x01\x02\x03\x04"
    data = b"hello, world!"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert _unmask(masked, mask) == data
    assert _unmask(b"", mask) == b""
    assert _unmask(data, b"\0\0\0\0") == data
    assert text_frame(b"x" * 125)[:2] == b"\x81\x7d"
    assert text_frame(b"x" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert text_frame(b"x" * 70000)[:10] == b"\x81\x7f" + struct.pack("!Q", 70000)


def test_many_frames_in_one_read_are_answered_in_order(raw):
    raw.send(b"".join(frame(ping(i)) for i in range(50)))
    assert [raw.recv_json()["id"] for _ in range(50)] == list(range(50))


def test_frames_split_across_reads(raw):
    data = b"".join(frame(ping(i)) for i in range(3))
    raw.send(data, chunk=3)
    assert [raw.recv_json()["id"] for _ in range(3)] == [0, 1, 2]
    fourth = frame(ping(4))
    raw.send(frame(ping(3)) + fourth[:5])  # a whole frame and the start of the next
    assert raw.recv_json()["id"] == 3
    time.sleep(0.05)
    raw.send(fourth[5:] + frame(ping(5)))
    assert [raw.recv_json()["id"] for _ in range(2)] == [4, 5]
    raw.send(frame(ping(6)))  # and back on the fast path
    assert raw.recv_json()["id"] == 6


def test_extended_lengths(raw):
    long_id = "x" * 300  # a 16-bit length, fast path
    raw.send(frame(ping(long_id)))
    assert raw.recv_json()["id"] == long_id
    huge_id = "y" * 70000  # a 64-bit length: Autobahn's parser
    raw.send(frame(ping(huge_id)))
    assert raw.recv_json()["id"] == huge_id
    raw.send(frame(ping(7), length="16"))  # a 16-bit length for a short payload is not minimal
    assert raw.recv_close() == 1002


def test_control_frames_between_requests(raw):
    raw.send(frame(ping(1)) + frame(b"are you there", opcode=9) + frame(ping(2)))
    assert raw.recv_json()["id"] == 1
    assert raw.recv_frame() == (10, b"are you there")
    assert raw.recv_json()["id"] == 2
    raw.send(frame(ping(3)))  # back on the fast path
    assert raw.recv_json()["id"] == 3


def test_fragmented_message_with_a_character_split_between_fragments(raw):
    text = json.dumps({"jsonrpc": "2.0", "method": "ping", "id": "ключ"}, ensure_ascii=False).encode()
    cut = text.index("ключ".encode()) + 1  # inside the two bytes of "к"
    raw.send(frame(text[:cut], fin=False) + frame(text[cut:], opcode=0))
    assert raw.recv_json()["id"] == "ключ"


def test_invalid_utf8_closes_1007_on_the_fast_path(server, raw):
    raw.send(frame(ping(1)) + frame(b'{"jsonrpc":"2.0","method":"ping","id":"\xff"}'))
    assert raw.recv_json()["id"] == 1
    assert raw.recv_close() == 1007


def test_invalid_utf8_closes_1007_in_a_fragmented_message(raw):
    raw.send(frame(b'{"jsonrpc":"2.0",', fin=False) + frame(b'"method":"\xc3\x28","id":1}', opcode=0))
    assert raw.recv_close() == 1007


def test_invalid_utf8_closes_1007_with_a_standard_client(server):
    with connect(server.url) as ws:
        ws.send(b'{"jsonrpc":"2.0","method":"ping","id":"\xed\xa0\x80"}', text=True)  # a UTF-16 surrogate
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
        assert info.value.rcvd.code == 1007
    with connect(server.url) as ws:  # and the service goes on
        ws.send(ping(1).decode())
        assert json.loads(ws.recv(timeout=5))["result"] == "pong"


def test_unmasked_client_frame_closes_1002(raw):
    raw.send(frame(ping(1), mask=b""))
    assert raw.recv_close() == 1002


def test_close_handshake_after_requests(raw):
    raw.send(frame(ping(1)) + frame(struct.pack("!H", 1000) + b"bye", opcode=8))
    assert raw.recv_json()["id"] == 1
    assert raw.recv_close() == 1000


def test_answers_larger_than_the_socket_buffers_arrive_whole_and_in_order(raw):
    """Answers sent while the client does not read: the first go straight to the socket, the
    rest queue in Twisted's buffer behind a partial send; nothing is lost or reordered."""
    ids = [f"{i:03d}" + "z" * 60000 for i in range(40)]  # 2.4 MB of answers, more than the kernel buffers
    raw.send(b"".join(frame(ping(i)) for i in ids))
    time.sleep(0.5)
    assert [raw.recv_json()["id"] for _ in ids] == ids
    raw.send(frame(ping(1)))
    assert raw.recv_json()["id"] == 1


def test_masker_for_autobahn_processes_in_chunks_at_any_offset():
    from camsvc.server.ws import _Masker

    mask = os.urandom(4)
    data = os.urandom(1000)
    whole = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    for cuts in ([1000], [1, 999], [3, 5, 7, 985], [500, 1, 2, 497]):
        masker, out, pos = _Masker(mask, len(data)), b"", 0
        for cut in cuts:
            out += masker.process(data[pos : pos + cut])
            pos += cut
        assert out == whole and masker.pointer() == 1000
    masker.reset()
    assert masker.pointer() == 0


def test_fragmented_long_message_through_autobahns_parser(raw):
    """Fragments (Autobahn's parser, camsvc's masker) of a 150 kB message with a random mask each."""
    text = ping("f" * 150000)
    parts = [text[i : i + 40000] for i in range(0, len(text), 40000)]
    raw.send(
        b"".join(
            frame(part, opcode=1 if i == 0 else 0, fin=i == len(parts) - 1, length="min")
            for i, part in enumerate(parts)
        )
    )
    assert raw.recv_json()["id"] == "f" * 150000
