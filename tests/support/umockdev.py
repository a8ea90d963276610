"""Venv-side driver of the umockdev test bed (no ``gi`` import here).

This module owns starting, talking to and stopping ``tests/support/umockdev_bed.py``, the
helper that runs under Debian's ``/usr/bin/python3`` with the umockdev preload and owns
the ``UMockdev.Testbed`` (see its docstring for the JSON-lines protocol and the
``max_dgram_qlen`` flow control).  It offers:

* :func:`umockdev_available` — ``(ok, reason)`` for ``pytest.skip``;
* :class:`Testbed` — a blocking driver for test set-up and for tests whose process under
  test is a separate (preloaded) subprocess;
* :class:`AsyncTestbed` — the same commands returning Deferreds over
  ``reactor.spawnProcess``, for pytest-twisted tests whose udev listener runs on the
  test's own reactor (a blocking call there could wait on a listener that cannot drain);
* :func:`raised_dgram_qlen` — temporarily raise ``net.unix.max_dgram_qlen`` (root only).

Findings, measured on this Debian 12 host (umockdev 0.17.16, pyudev 0.24.5, kernel 6.x)
with ``bench/udev_raw.py`` and ``tests/test_umockdev_bed.py``:

1. **Who can see the test bed.**  A process sees it only if the preload library was
   loaded *at its start* (``LD_PRELOAD=libumockdev-preload.so.0`` in the environment it
   was exec'd with) — setting ``LD_PRELOAD`` later in ``os.environ`` does nothing.
   ``UMOCKDEV_DIR`` is read by the preload on every trapped call, so a process started
   with only ``LD_PRELOAD`` (where the preload is a pass-through: real ``/sys``, real
   ``/dev``, real netlink) may set ``os.environ["UMOCKDEV_DIR"] = tb.root_dir`` later and
   from then on sees the bed (pyudev enumeration, monitors created afterwards, emulated
   ``/dev`` nodes).  So the normally started pytest process cannot see the bed; either
   run pytest itself under ``LD_PRELOAD`` (then :meth:`Testbed.activate` sets
   ``UMOCKDEV_DIR`` in-process), or run the service under test as a subprocess with
   :meth:`Testbed.env`.  The tests exercise the subprocess path and the late
   ``UMOCKDEV_DIR`` path (``test_late_umockdev_dir_in_a_preloaded_process``).
2. **pyudev Monitor on a Twisted reactor.**  Yes: under the preload the monitor is an
   AF_UNIX datagram socket (``$UMOCKDEV_DIR/event<fd>``) whose fd works with
   ``reactor.addReader``; draining with ``monitor.poll(timeout=0)`` in ``doRead`` works.
   ``Monitor.set_receive_buffer_size(n)`` succeeds on the unix socket (measured as root;
   it uses SO_RCVBUFFORCE) but cannot prevent overflow: a unix datagram
   queue is bounded by ``net.unix.max_dgram_qlen`` (10), not by bytes, and overflow makes
   umockdev's *sender* abort instead of the receiver getting ENOBUFS.  The ENOBUFS
   re-enumeration path therefore needs a unit test with a fake monitor.
3. **V4L2 ioctls.**  ``os.open("/dev/videoN", O_RDWR|O_NONBLOCK)`` + ``fcntl.ioctl`` in a
   preloaded process reach the helper's ``UMockdev.IoctlBase`` handler over a unix
   socket, so ``camsvc.cameras.v4l2.probe`` works unchanged: ~0.2 ms per ioctl, a full probe of
   the default 2-format camera (25 ioctls) 5.4 ms p50 / 7.7 ms max.  Unhandled requests
   fail with ENOTTY; ``stat`` says char device 81:N; after ``remove`` the node is gone
   (ENOENT → ProbeError "vanished"); ``fail_after`` makes a node answer ENODEV mid-probe.
   The helper runs a GLib main loop to answer, and keeps iterating it while a command
   waits for a listener to drain, so a listener probing the camera cannot deadlock it.
4. **Latency** uevent → pyudev event on a Twisted reactor (``bench/udev_raw.py``, 200
   events, listener = preloaded venv subprocess, 2-vCPU VM shared with other jobs),
   runs of 200: ``change`` uevents p50 0.14-0.15 ms, p99 0.3-2.1 ms, max 0.4-3.8 ms;
   ``storm`` remove/add pairs p50 0.27-0.34 ms, p99 0.5-5 ms, rare max 40-90 ms outliers
   (host noise).  ``add`` is timestamped right before its uevent: the helper hides the
   listener sockets while umockdev creates the sysfs entry (~2.4 ms, which would
   otherwise count) and sends the "add" itself afterwards.
5. Traps: a process opening a monitor steals another's events if both use the same fd
   number (socket named after the fd) — do not run two listeners with equal fd numbers
   against one bed; enumerated devices have ``is_initialized == False`` (no udev
   database) — never make "initialized" a camera condition; the properties of enumerated
   devices *and* of events come from the device's sysfs ``uevent`` file, where the helper
   writes udev-like ``ID_*``/``DEVLINKS`` values, but no ``/dev/v4l/by-*`` symlinks exist;
   ``remove_device`` cleans only the device it is given (the helper removes level by
   level); the preload tracks at most ~50 open emulated ``/dev`` fds per process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "umockdev_bed.py")
SYSTEM_PYTHON = "/usr/bin/python3"
PRELOAD = "libumockdev-preload.so.0"
QLEN_PATH = "/proc/sys/net/unix/max_dgram_qlen"
QLEN_LOCK = "/tmp/camsvc-tests-dgram-qlen.lock"

__all__ = [
    "HELPER",
    "AsyncTestbed",
    "Testbed",
    "UMockdevError",
    "in_preloaded_process",
    "preload_env",
    "raised_dgram_qlen",
    "umockdev_available",
]


class UMockdevError(RuntimeError):
    """The helper refused a command or died."""


def _preload_lib_present() -> bool:
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/lib"):
        if os.path.exists(os.path.join(d, PRELOAD)):
            return True
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return PRELOAD in out


_available: tuple[bool, str] | None = None


def umockdev_available() -> tuple[bool, str]:
    """``(True, "")`` when the preload library, Debian's python3 and its ``gi`` with the
    UMockdev typelib are all there, else ``(False, reason)`` (cached)."""
    global _available
    if _available is not None:
        return _available
    if not os.path.exists(SYSTEM_PYTHON):
        _available = (False, f"{SYSTEM_PYTHON} not found")
    elif not _preload_lib_present():
        _available = (False, f"{PRELOAD} not found (apt-get install umockdev)")
    else:
        probe = "import gi; gi.require_version('UMockdev', '1.0'); from gi.repository import UMockdev"
        try:
            r = subprocess.run([SYSTEM_PYTHON, "-I", "-c", probe], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as e:
            _available = (False, f"cannot run {SYSTEM_PYTHON}: {e}")
        else:
            if r.returncode != 0:
                last = (r.stderr.strip().splitlines() or ["?"])[-1]
                _available = (
                    False,
                    f"UMockdev GI bindings missing (apt-get install gir1.2-umockdev-1.0 python3-gi): {last}",
                )
            else:
                _available = (True, "")
    return _available


def in_preloaded_process() -> bool:
    """True when this process was started with the umockdev preload loaded."""
    try:
        with open("/proc/self/maps") as f:
            return "libumockdev-preload" in f.read()
    except OSError:
        return False


def preload_env(root_dir: str, base: dict | None = None) -> dict:
    """The environment a process under test needs to see the bed at ``root_dir``."""
    env = dict(os.environ if base is None else base)
    pre = env.get("LD_PRELOAD", "")
    if PRELOAD not in pre:
        env["LD_PRELOAD"] = f"{PRELOAD} {pre}".strip()
    env["UMOCKDEV_DIR"] = root_dir
    return env


def _helper_argv() -> list[str]:
    return [SYSTEM_PYTHON, "-I", HELPER]


def _helper_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "UMOCKDEV_DIR"}
    env["LD_PRELOAD"] = PRELOAD
    return env


class _Commands:
    """Command methods shared by the sync and async drivers; ``command`` does the I/O."""

    def command(self, cmd: str, **fields: Any):  # pragma: no cover - overridden
        raise NotImplementedError

    def add_camera(self, name: str | None = None, **spec: Any):
        """Add a camera; see ``umockdev_bed.Bed.handle_add_camera`` for the fields
        (card, serial, vendor, product, bus, port, video, metadata, platform, id_path,
        capabilities, driver, bus_info, formats, fail_after, paced).  Returns the reply:
        name, syspath, devnode, props, meta_syspath/meta_devnode, t."""
        if name is not None:
            spec["name"] = name
        return self.command("add_camera", **spec)

    def add_zoo(self, plug: dict, **kw: Any):
        """Plug one device of a zoo population (``tests.support.zoo.bed_plugs``): its
        parents and nodes exactly as the dump shows them, /dev/v4l links included."""
        return self.command("add_zoo", **plug, **kw)

    def remove(self, name: str, **kw: Any):
        return self.command("remove", name=name, **kw)

    def replug(self, name: str, video: int | None = None, **kw: Any):
        return self.command("replug", name=name, video=video, **kw)

    def storm(self, name: str, count: int, **kw: Any):
        return self.command("storm", name=name, count=count, **kw)

    def uevent(self, action: str, *, syspath: str | None = None, name: str | None = None, **kw: Any):
        return self.command("uevent", action=action, syspath=syspath, name=name, **kw)

    def set_property(self, syspath: str, key: str, value: str):
        return self.command("set_property", syspath=syspath, key=key, value=value)

    def set_attribute(self, syspath: str, key: str, value: str):
        return self.command("set_attribute", syspath=syspath, key=key, value=value)

    def ioctl_calls(self, name: str):
        return self.command("ioctl_calls", name=name)

    def cameras(self):
        return self.command("list")

    def listeners(self):
        return self.command("listeners")


class Testbed(_Commands):
    """Blocking driver: starts the helper at construction, ``close()`` stops it.

    ``root_dir`` is the bed's root; ``env()`` the environment for a process under test.
    Every method returns the helper's reply dict (``"t"`` = CLOCK_MONOTONIC just before
    the capture node's uevent) or raises :class:`UMockdevError`.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, *, timeout: float = 30.0):
        ok, reason = umockdev_available()
        if not ok:
            raise UMockdevError(reason)
        self.timeout = timeout
        self._proc = subprocess.Popen(
            _helper_argv(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_helper_env(),
            bufsize=0,
        )
        self._buf = b""
        hello = self._read_line(timeout)
        if not hello.get("ready"):
            self.close()
            raise UMockdevError(f"helper did not start: {hello}")
        self.root_dir: str = hello["root_dir"]
        self.max_dgram_qlen: int | None = hello.get("max_dgram_qlen")
        self._saved_dir: str | None | bool = False

    def env(self, base: dict | None = None) -> dict:
        return preload_env(self.root_dir, base)

    def activate(self) -> None:
        """Point *this* process at the bed (``os.environ["UMOCKDEV_DIR"]``).  Only has an
        effect when this process was started under the preload (see finding 1)."""
        if not in_preloaded_process():
            raise UMockdevError("this process was not started with LD_PRELOAD=" + PRELOAD)
        if self._saved_dir is False:
            self._saved_dir = os.environ.get("UMOCKDEV_DIR")
        os.environ["UMOCKDEV_DIR"] = self.root_dir

    def deactivate(self) -> None:
        if self._saved_dir is False:
            return
        if self._saved_dir is None:
            os.environ.pop("UMOCKDEV_DIR", None)
        else:
            os.environ["UMOCKDEV_DIR"] = self._saved_dir
        self._saved_dir = False

    def _read_line(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise UMockdevError(f"helper did not answer within {timeout}s")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise UMockdevError(f"helper exited (rc={self._proc.poll()})")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, cmd: str, **fields: Any) -> dict:
        if self._proc.poll() is not None:
            raise UMockdevError(f"helper exited (rc={self._proc.returncode})")
        msg = {"cmd": cmd, **{k: v for k, v in fields.items() if v is not None}}
        try:
            self._proc.stdin.write((json.dumps(msg) + "\n").encode())
        except BrokenPipeError:
            raise UMockdevError(f"helper exited (rc={self._proc.wait()})") from None
        reply = self._read_line(self.timeout)
        if not reply.get("ok"):
            raise UMockdevError(f"{cmd}: {reply.get('error')}")
        return reply

    def wait_for_listeners(self, n: int = 1, timeout: float = 10.0) -> list[str]:
        """Block until at least ``n`` monitor sockets exist in the bed (a process under
        test has started its udev monitor), so events sent next reach it."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.listeners()["listeners"]
            if len(got) >= n:
                return got
            if time.monotonic() > deadline:
                raise UMockdevError(f"{len(got)} listener(s) after {timeout}s, wanted {n}")
            time.sleep(0.01)

    def close(self) -> None:
        self.deactivate()
        proc = self._proc
        if proc.poll() is None:
            try:
                proc.stdin.write(b'{"cmd": "quit"}\n')
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for f in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                f.close()
        root = getattr(self, "root_dir", None)
        if root and os.path.basename(root).startswith("umockdev."):
            # the Testbed's destructor normally removes it; a killed helper leaves it
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncTestbed(_Commands):
    """Deferred-returning driver for pytest-twisted tests.

    ``d = AsyncTestbed.start(reactor)`` fires with a started bed; every command method
    returns a Deferred firing with the reply dict (errback :class:`UMockdevError`);
    ``close()`` returns a Deferred that fires when the helper has exited.  Commands are
    answered in order, so they are queued FIFO.
    """

    __test__ = False

    def __init__(self, reactor):
        self.reactor = reactor
        self.root_dir: str | None = None
        self._pending: list = []
        self._ready = None
        self._ended = None
        self._proto = None

    @classmethod
    def start(cls, reactor):
        from twisted.internet import defer, protocol

        bed = cls(reactor)
        bed._ready = defer.Deferred()
        bed._ended = defer.Deferred()

        class _Proto(protocol.ProcessProtocol):
            def __init__(self):
                self.buf = b""

            def outReceived(self, data):
                self.buf += data
                while b"\n" in self.buf:
                    line, self.buf = self.buf.split(b"\n", 1)
                    bed._line(json.loads(line))

            def processEnded(self, reason):
                err = UMockdevError(f"helper exited: {reason.value}")
                pending, bed._pending = bed._pending, []
                for d in pending:
                    d.errback(err)
                if bed._ready is not None:
                    d, bed._ready = bed._ready, None
                    d.errback(err)
                bed._ended.callback(None)

        ok, reason = umockdev_available()
        if not ok:
            return defer.fail(UMockdevError(reason))
        bed._proto = _Proto()
        reactor.spawnProcess(
            bed._proto, SYSTEM_PYTHON, _helper_argv(), env=_helper_env(), childFDs={0: "w", 1: "r", 2: 2}
        )
        return bed._ready

    def _line(self, msg: dict) -> None:
        if self._ready is not None and msg.get("ready"):
            self.root_dir = msg["root_dir"]
            d, self._ready = self._ready, None
            d.callback(self)
            return
        if not self._pending:
            return
        d = self._pending.pop(0)
        if msg.get("ok"):
            d.callback(msg)
        else:
            d.errback(UMockdevError(msg.get("error")))

    def env(self, base: dict | None = None) -> dict:
        return preload_env(self.root_dir, base)

    def command(self, cmd: str, **fields: Any):
        from twisted.internet import defer

        d = defer.Deferred()
        self._pending.append(d)
        msg = {"cmd": cmd, **{k: v for k, v in fields.items() if v is not None}}
        self._proto.transport.write((json.dumps(msg) + "\n").encode())
        return d

    def close(self):
        if self._proto is not None and self._proto.transport is not None:
            with contextlib.suppress(Exception):
                self._proto.transport.write(b'{"cmd": "quit"}\n')
                self._proto.transport.closeStdin()
        return self._ended


@contextlib.contextmanager
def raised_dgram_qlen(value: int = 1000) -> Iterator[bool]:
    """Raise ``net.unix.max_dgram_qlen`` (system-wide!) for an unpaced storm and put it
    back afterwards.  Yields False (and changes nothing) when not permitted.

    Held under an exclusive lock (QLEN_LOCK): suites running side by side (make
    test-distro-libs, or several checkouts on one machine) would otherwise put
    the old value back under each other's storm."""
    try:
        lock = open(QLEN_LOCK, "a")
    except OSError:
        lock = None
    try:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        with _raised_dgram_qlen(value) as raised:
            yield raised
    finally:
        if lock is not None:
            lock.close()  # releases the lock


@contextlib.contextmanager
def _raised_dgram_qlen(value: int) -> Iterator[bool]:
    try:
        with open(QLEN_PATH) as f:
            old = int(f.read())
    except (OSError, ValueError):
        yield False
        return
    if old >= value:
        yield True
        return
    try:
        with open(QLEN_PATH, "w") as f:
            f.write(str(value))
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        with open(QLEN_PATH, "w") as f:
            f.write(str(old))
