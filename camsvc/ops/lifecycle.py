"""Process life cycle: signals, bounded graceful shutdown, forced exit.

This module owns what happens between "the operator sends a signal" and "the
process is gone":

* **SIGTERM / SIGINT** start a graceful shutdown (``reactor.stop()``): the
  services stop in reverse order of creation, one after another, so the
  listener first stops accepting and closes every WebSocket with 1001, then
  components finalise their work (recordings, child processes, HTTP pools).
  The exit status is 0.  Twisted's own handlers would re-raise the signal
  after a clean shutdown (status -15 / 143); systemd counts that as success
  too, but ``kill``/shell users and supervisors read it as "killed", so
  camsvc installs its own handlers (public :func:`signal.signal`, once the
  reactor runs) that stop the reactor without recording a signal.
* **A second SIGTERM / SIGINT** during shutdown forces the exit at once
  (status 1), after SIGKILLing any child process still running.
* The shutdown is **bounded**: :func:`stop_in_order` stops waiting for
  services that have not finished after ``timeout`` seconds (and says which),
  and a ``SIGALRM`` deadline set when shutdown starts ends the process even
  if the reactor itself is stuck.
* **SIGHUP** calls the reload callback (configuration reload, see
  :mod:`camsvc.ops.reload`) on the reactor thread.

Only :mod:`camsvc.tap` creates these with the real reactor; tests inject
fakes for the reactor, the ``signal`` module and the exit function.
"""

from __future__ import annotations

import os
import signal as signal_module
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ReactorNotRunning
from twisted.logger import Logger

log = Logger()

#: Exit status when shutdown is forced (second signal or deadline).
EXIT_FORCED = 1
#: Seconds components get, beyond server.shutdown_timeout, to stop after the clients are gone.
STOP_MARGIN = 10.0
#: Seconds after the soft limit before the SIGALRM deadline ends the process regardless.
HARD_MARGIN = 5.0


def child_pids() -> list[int]:
    """PIDs of this process's children (Linux ``/proc/self/task/*/children``)."""
    pids: list[int] = []
    try:
        tasks = list(Path("/proc/self/task").iterdir())
    except OSError:
        return pids
    for task in tasks:
        try:
            pids.extend(int(p) for p in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def kill_children(sig: int = signal_module.SIGKILL) -> list[int]:
    """Send ``sig`` to every child process; return their PIDs (safe in a signal handler)."""
    pids = child_pids()
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    return pids


class SignalService(Service):
    """Installs camsvc's SIGTERM/SIGINT/SIGHUP handlers once the reactor runs.

    Collaborators: ``reactor`` (``callWhenRunning``, ``callFromThread``,
    ``stop``, ``addSystemEventTrigger``), ``on_reload`` (called on the
    reactor thread for SIGHUP), ``deadline`` (seconds from the start of
    shutdown to a forced exit), and for tests ``signals`` (the
    :mod:`signal` module), ``exit`` (:func:`os._exit`), ``kill`` (kills the
    child processes) and ``write`` (a last words line on stderr).
    """

    name = "signals"

    def __init__(
        self,
        reactor: Any,
        *,
        on_reload: Callable[[], Any] | None,
        deadline: float,
        signals: Any = signal_module,
        exit: Callable[[int], Any] = os._exit,
        kill: Callable[[int], list] = kill_children,
        write: Callable[[str], Any] | None = None,
    ) -> None:
        self.reactor = reactor
        self.on_reload = on_reload
        self.deadline = deadline
        self.signals = signals
        self._exit = exit
        self._kill = kill
        self._write = write or (lambda text: os.write(2, text.encode("utf-8", "replace")))
        self.stopping = False
        self.installed = False

    def startService(self) -> None:
        super().startService()
        if self.on_reload is not None:
            # Until the handler is installed, a SIGHUP (an early `systemctl reload`) must not
            # kill the process, which is its default action.
            self.signals.signal(self.signals.SIGHUP, signal_module.SIG_IGN)
        self.reactor.callWhenRunning(self.install)
        self.reactor.addSystemEventTrigger("before", "shutdown", self.shutdown_begins)

    def install(self) -> None:
        """Replace the reactor's SIGTERM/SIGINT handlers (installed at startup) and handle SIGHUP."""
        sig = self.signals
        sig.signal(sig.SIGTERM, self._terminate)
        sig.signal(sig.SIGINT, self._terminate)
        if self.on_reload is not None:
            sig.signal(sig.SIGHUP, self._hangup)
        self.installed = True

    # -- handlers (they run between two bytecodes of the main thread: hand work to the reactor) --

    def _terminate(self, signum: int, frame: Any = None) -> None:
        if self.stopping:
            self.force(f"{_name(signum)} received during shutdown")
            return
        self.stopping = True
        self.reactor.callFromThread(self._stop, signum)

    def _hangup(self, signum: int, frame: Any = None) -> None:
        self.reactor.callFromThread(self._reload)

    def _deadline(self, signum: int, frame: Any = None) -> None:
        self.force(f"shutdown did not finish within {self.deadline:g}s")

    # -- on the reactor ------------------------------------------------------------

    def _stop(self, signum: int) -> None:
        log.info("Received {signal}: shutting down (send it again to force)", signal=_name(signum))
        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass

    def _reload(self) -> None:
        if self.stopping:
            log.info("SIGHUP ignored: shutting down")
            return
        try:
            self.on_reload()
        except Exception:
            log.failure("Configuration reload failed")

    def shutdown_begins(self) -> None:
        """Before-shutdown trigger: from now on a signal forces the exit, and a deadline runs."""
        self.stopping = True
        sig = self.signals
        try:
            sig.signal(sig.SIGALRM, self._deadline)
            sig.setitimer(sig.ITIMER_REAL, self.deadline)
        except (OSError, ValueError, AttributeError):
            log.failure("Cannot arm the shutdown deadline")

    def force(self, why: str) -> None:
        """Exit now: kill child processes, write one line on stderr, ``_exit``."""
        try:
            pids = self._kill(signal_module.SIGKILL)
            self._write(f"camsvc: {why}: forcing exit" + (f" (killed child processes {pids})" if pids else "") + "\n")
        finally:
            self._exit(EXIT_FORCED)


def _name(signum: int) -> str:
    try:
        return signal_module.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def stop_in_order(services: list, clock: Any, timeout: float) -> Deferred:
    """Stop ``services`` one after another, in the given order, within ``timeout`` seconds overall.

    Each service's ``stopService`` is awaited before the next one is stopped,
    so later services (the MediaMTX client, say) are still there while
    earlier ones (recordings) finish.  Once the time is up the services still
    stopping are named in the log and the remaining ones are stopped without
    waiting.  The returned Deferred never fails.
    """
    done: Deferred = Deferred()
    deadline = clock.seconds() + timeout
    queue = list(services)
    state: dict[str, Any] = {"timer": None, "current": None}

    def finish() -> None:
        if not done.called:
            done.callback(None)

    def give_up() -> None:
        state["timer"] = None
        waiting = state["current"]
        rest = list(queue)
        queue.clear()
        names = [_service_name(waiting)] if waiting is not None else []
        log.warn(
            "Shutdown: {names} still stopping after {timeout:g}s; not waiting any longer",
            names=", ".join(names) or "nothing",
            timeout=timeout,
        )
        for service in rest:
            _stop_one(service)
        finish()

    def next_one(_: Any = None) -> None:
        if done.called:
            return
        if not queue:
            if state["timer"] is not None and state["timer"].active():
                state["timer"].cancel()
            finish()
            return
        service = queue.pop(0)
        state["current"] = service
        _stop_one(service).addBoth(next_one)

    state["timer"] = clock.callLater(max(deadline - clock.seconds(), 0), give_up)
    next_one()
    return done


def kill_leftover_children() -> list[int]:
    """After the services stopped: SIGKILL any child process their owners left behind (and say so)."""
    pids = child_pids()
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            name = "?"
        log.warn("Child process {pid} ({name}) still running after shutdown: killing it", pid=pid, name=name)
        try:
            os.kill(pid, signal_module.SIGKILL)
        except OSError:
            pass
    return pids


def _stop_one(service: Any) -> Deferred:
    def failed(failure: Any) -> None:
        log.failure("Stopping {service} failed", failure, service=_service_name(service))

    return maybeDeferred(service.stopService).addErrback(failed)


def _service_name(service: Any) -> str:
    return getattr(service, "name", None) or type(service).__name__
