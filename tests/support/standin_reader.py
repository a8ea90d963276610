"""A keep-alive reader for the MediaMTX stand-in's fake RTSP port (test support).

Owns one thing: attach to a path as an RTSP reader and stay attached until
killed, so camsvc's configurable "keep-alive reader" command can be pointed at
it in tests::

    python -m tests.support.standin_reader 127.0.0.1:8554 camera0

It sends ``DESCRIBE rtsp://HOST:PORT/PATH RTSP/1.0``, reports the status line
on stderr and then blocks until the server closes the connection (exit 0) or
the process is terminated.  Exit 1 when it cannot connect or the path is
refused.  A separate process with a blocking socket: no reactor, no threads.
"""

from __future__ import annotations

import socket
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        sys.stderr.write("usage: python -m tests.support.standin_reader HOST:PORT PATH\n")
        return 2
    hostport, path = argv
    host, _, port = hostport.rpartition(":")
    path = path.strip("/")
    try:
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
    except OSError as e:
        sys.stderr.write(f"standin_reader: cannot connect to {hostport}: {e}\n")
        return 1
    request = f"DESCRIBE rtsp://{hostport}/{path} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"
    sock.sendall(request.encode("ascii"))
    sock.settimeout(None)
    reply = b""
    while b"\r\n" not in reply:
        chunk = sock.recv(4096)
        if not chunk:
            sys.stderr.write("standin_reader: connection closed before a reply\n")
            return 1
        reply += chunk
    status = reply.split(b"\r\n", 1)[0].decode("latin-1")
    sys.stderr.write(f"standin_reader: {path}: {status}\n")
    sys.stderr.flush()
    if " 200 " not in status + " ":
        return 1
    while sock.recv(65536):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
