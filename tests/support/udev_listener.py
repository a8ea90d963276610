"""A minimal udev consumer run as a preloaded venv subprocess in umockdev tests.

Owns nothing of camsvc's: it is the "process under test" stand-in that proves the
pieces camsvc's discovery builds on — pyudev enumeration, a ``pyudev.Monitor`` whose fd is
an ``IReadDescriptor`` on a Twisted reactor (drained with ``poll(timeout=0)``), and
``camsvc.cameras.v4l2.probe`` — work under the umockdev preload.

    env = testbed.env(); python -m tests.support.udev_listener   (cwd = repository root)

stdout, one JSON object per line: first ``{"ready": true, "rcvbuf": "ok"|error,
"fd": monitor fd}``, then ``{"event": {action, sys_path, devnode, seq, t, props}}`` for
every video4linux uevent (``t`` = time.monotonic() when Python got it) and one
``{"reply": ...}`` per stdin command:

  list          → [{sys_path, devnode, props, usb_serial, initialized}] from enumeration
  probe PATH    → camsvc.cameras.v4l2.probe(PATH).to_dict() or {"error", "reason", "errno"}
  pause SECONDS → stop reading the monitor for that long (to fill its queue)
  resume        → read the monitor again now (ends a pause early)
  env           → {"UMOCKDEV_DIR": ...}
"""

from __future__ import annotations

import json
import sys
import time

import pyudev
from twisted.internet import protocol, reactor, stdio
from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer

from camsvc.cameras import v4l2

_stdio: stdio.StandardIO | None = None


def emit(obj) -> None:
    """One JSON line to the test.  Through Twisted's stdio transport, which buffers
    while the pipe is full: StandardIO makes stdout non-blocking, so a plain write
    would fail (and lose events) whenever the test reads slower than events come."""
    line = json.dumps(obj) + "\n"
    if _stdio is None:
        sys.stdout.write(line)
        sys.stdout.flush()
    else:
        _stdio.write(line.encode())


def describe(dev: pyudev.Device) -> dict:
    usb = dev.find_parent("usb", "usb_device")
    return {
        "sys_path": dev.sys_path,
        "devnode": dev.device_node,
        "props": dict(dev.properties),
        "usb_serial": usb.attributes.asstring("serial")
        if usb is not None and "serial" in usb.attributes.available_attributes
        else None,
        "initialized": dev.is_initialized,
    }


@implementer(IReadDescriptor)
class MonitorReader:
    def __init__(self, monitor: pyudev.Monitor):
        self.monitor = monitor

    def fileno(self) -> int:
        return self.monitor.fileno()

    def doRead(self):
        while True:
            try:
                dev = self.monitor.poll(timeout=0)
            except OSError as e:
                emit({"monitor_error": e.errno})
                return
            if dev is None:
                return
            emit(
                {
                    "event": {
                        "t": time.monotonic(),
                        "action": dev.action,
                        "sys_path": dev.sys_path,
                        "devnode": dev.device_node,
                        "seq": dev.sequence_number,
                        "props": dict(dev.properties),
                    }
                }
            )

    def connectionLost(self, reason) -> None:
        pass

    def logPrefix(self) -> str:
        return "udev"


class Commands(protocol.Protocol):
    def __init__(self, context: pyudev.Context, reader: MonitorReader):
        self.context, self.reader, self.buf = context, reader, b""
        self.paused = None  # the DelayedCall that ends the current pause

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                self.command(line.decode().split())

    def command(self, words: list[str]) -> None:
        import os

        name, args = words[0], words[1:]
        if name == "list":
            devs = [describe(d) for d in self.context.list_devices(subsystem="video4linux")]
            emit({"reply": sorted(devs, key=lambda d: d["sys_path"])})
        elif name == "probe":
            try:
                emit({"reply": v4l2.probe(args[0]).to_dict()})
            except v4l2.ProbeError as e:
                emit({"reply": {"error": str(e), "reason": e.reason, "errno": e.errno}})
        elif name == "pause":
            reactor.removeReader(self.reader)
            if self.paused is not None and self.paused.active():
                self.paused.cancel()
            self.paused = reactor.callLater(float(args[0]), reactor.addReader, self.reader)
            emit({"reply": "paused"})
        elif name == "resume":
            if self.paused is not None and self.paused.active():
                self.paused.cancel()
            self.paused = None
            reactor.addReader(self.reader)
            emit({"reply": "resumed"})
        elif name == "env":
            emit({"reply": {"UMOCKDEV_DIR": os.environ.get("UMOCKDEV_DIR")}})
        else:
            emit({"reply": {"error": "unknown command " + name}})

    def connectionLost(self, reason) -> None:
        if reactor.running:
            reactor.stop()


def main() -> None:
    context = pyudev.Context()
    monitor = pyudev.Monitor.from_netlink(context)
    monitor.filter_by("video4linux")
    try:
        monitor.set_receive_buffer_size(4 * 1024 * 1024)
        rcvbuf = "ok"
    except Exception as e:  # reported to the test, which decides
        rcvbuf = repr(e)
    monitor.start()
    reader = MonitorReader(monitor)
    reactor.addReader(reader)
    global _stdio
    _stdio = stdio.StandardIO(Commands(context, reader))
    emit({"ready": True, "rcvbuf": rcvbuf, "fd": monitor.fileno()})
    reactor.run()


if __name__ == "__main__":
    main()
