"""camsvc.common.writer: state files are written by a pool thread, newest content wins."""

from __future__ import annotations

import threading

from twisted.python.threadpool import ThreadPool

import camsvc.common.writer as writer_module
from camsvc.common.writer import BackgroundWriter


class ThreadedReactor:
    """Just enough of a reactor for deferToThreadPool: results come back via pump()."""

    def __init__(self):
        self.pool = ThreadPool(minthreads=1, maxthreads=1)
        self.pool.start()
        self.calls = []
        self.lock = threading.Lock()

    def getThreadPool(self):
        return self.pool

    def callFromThread(self, f, *a, **kw):
        with self.lock:
            self.calls.append((f, a, kw))

    def pump(self, until, timeout=10.0):
        done = threading.Event()
        for _ in range(int(timeout / 0.01)):
            with self.lock:
                calls, self.calls = self.calls, []
            for f, a, kw in calls:
                f(*a, **kw)
            if until():
                return
            done.wait(0.01)
        raise AssertionError("condition not reached")


def test_the_caller_never_waits_on_the_disk_and_the_newest_content_wins(tmp_path, monkeypatch):
    reactor = ThreadedReactor()
    gate = threading.Event()
    real = writer_module.atomic_write
    order = []

    def slow_disk(path, data, **kw):
        gate.wait(10)  # a disk that does not answer until the test says so
        order.append(data)
        real(path, data, **kw)

    monkeypatch.setattr(writer_module, "atomic_write", slow_disk)
    path = tmp_path / "state.json"
    w = BackgroundWriter(reactor, str(path))
    try:
        first = w.write(b"1")
        w.write(b"2")
        last = w.write(b"3")
        assert not path.exists()  # write() returned while the disk is still blocked
        drained = w.drain()
        assert not drained.called
        gate.set()
        reactor.pump(lambda: last.called and first.called and drained.called)
        assert path.read_bytes() == b"3"
        assert order == [b"1", b"3"]  # "2" was superseded while "1" was in flight
        assert w.writes == 2 and w.errors == 0
    finally:
        gate.set()
        reactor.pool.stop()


def test_an_older_content_never_lands_after_a_newer_one(tmp_path):
    w = BackgroundWriter(object(), str(tmp_path / "s"))  # no thread pool: synchronous
    w._write(2, b"new")
    w._write(1, b"old")  # a late thread write of older content
    assert (tmp_path / "s").read_bytes() == b"new"


def test_failures_are_reported_not_raised(tmp_path):
    seen = []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    w = BackgroundWriter(object(), str(blocker / "sub" / "state"), on_error=seen.append)
    w.write(b"data")
    assert w.errors == 1 and isinstance(seen[0], OSError)
