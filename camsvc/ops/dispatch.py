"""The reactor's I/O dispatch without Twisted's legacy per-event log context.

Twisted's poll reactors hand every ready descriptor to ``log.callWithLogger``, which calls the
selectable's ``logPrefix()`` and pushes a context dict so that *legacy* ``twisted.python.log``
messages emitted inside get that prefix as their ``system``.  That costs ~2 us per event, two
events per JSON-RPC request (the read and the write), a tenth of camsvc's whole CPU time per
``ping`` (docs/performance.md).  camsvc logs with ``twisted.logger``, whose events carry their
own namespace, and the reactor's ``_doReadOrWrite`` already catches and logs every exception of
``doRead``/``doWrite``; so :func:`install` gives the epoll reactor a ``doPoll`` that dispatches
directly, otherwise identical to Twisted's (the same ``poll`` call, the same EINTR handling,
``_doReadOrWrite`` for each event).  Other reactors are left alone.

Owns only that.  Called once from :func:`camsvc.tap.makeService` with the running reactor.
"""

from __future__ import annotations

import errno
from types import MethodType
from typing import Any

from twisted.logger import Logger

log = Logger()


def _do_poll(self: Any, timeout: float | None) -> None:
    if timeout is None:
        timeout = -1  # wait indefinitely
    try:
        events = self._poller.poll(timeout, len(self._selectables))
    except OSError as err:
        if err.errno == errno.EINTR:
            return
        raise
    selectables = self._selectables
    dispatch = self._doReadOrWrite
    for fd, event in events:
        selectable = selectables.get(fd)
        if selectable is not None:
            try:
                dispatch(selectable, fd, event)
            except KeyboardInterrupt:
                raise
            except BaseException:  # _doReadOrWrite catches the selectable's own errors already
                log.failure("Dispatching an I/O event for {selectable!r} failed", selectable=selectable)


def install(reactor: Any) -> bool:
    """Give an epoll reactor the direct dispatch; return whether it was installed."""
    try:
        from twisted.internet.epollreactor import EPollReactor
    except ImportError:  # pragma: no cover - not Linux
        return False
    if not isinstance(reactor, EPollReactor) or type(reactor).doPoll is not EPollReactor.doPoll:
        return False
    fast = MethodType(_do_poll, reactor)
    reactor.doPoll = fast
    reactor.doIteration = fast
    return True
