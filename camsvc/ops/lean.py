"""Keep the TLS stack out of a process that does not use TLS.

Twisted treats pyOpenSSL as optional: when ``import OpenSSL`` fails, its TCP
transports are built without TLS support and everything else works.  Loading
pyOpenSSL costs ~6.5 MB of resident memory on Debian 12 (measured with
``bench/rss.py``), a fifth of the idle budget, for a feature most camera
boxes never turn on.  :func:`skip_tls_stack_if_unused` therefore installs an
import hook that refuses ``OpenSSL`` — only when neither the server
(``server.tls``) nor the MediaMTX client (an ``https://`` api_url) needs it,
and only if nothing has imported it yet.  It runs in ``Options.postOptions``,
before twistd imports the reactor.

Autobahn's native helpers (NVX: a CFFI UTF-8 validator and frame masker) are refused the same
way by :func:`skip_native_websocket_helpers`: loading them parses their C declarations with
pycparser at import, 1.2 MiB resident, and camsvc needs neither (its frame layer unmasks with
:func:`camsvc.server.ws._unmask` and hands Autobahn the same masker; text is decoded strictly
instead of validated incrementally).  Debian's Autobahn uses wsaccel instead and is unaffected.

Start-up (imports, parsing the configuration, building the API registry) frees a megabyte of
glibc heap that glibc keeps mapped, and so does a burst of load (buffers of many connections);
:func:`trim_heap` hands it back with ``malloc_trim(0)`` (about a millisecond), which
:func:`schedule_trims` runs a few seconds after start and then every minute (-0.8 MiB idle
``VmRSS`` in the venv, see docs/performance.md).
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.logger import Logger

log = Logger()

_BLOCKED = ("OpenSSL",)


class _RefuseTLSStack:
    """A meta-path finder that makes ``import OpenSSL`` fail as if it were not installed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"{name} is not loaded: TLS is not configured", name=name)
        return None


class _RefuseNativeWebSocketHelpers:
    """A meta-path finder that makes Autobahn's NVX extension modules look not built."""

    NAMES = ("_nvx_utf8validator", "_nvx_xormasker")

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name in self.NAMES:
            raise ModuleNotFoundError(f"{name} is not loaded: camsvc masks and validates frames itself", name=name)
        return None


def skip_native_websocket_helpers() -> bool:
    """Install the NVX refusal unless Autobahn's WebSocket layer is loaded already; return whether it was."""
    if "autobahn.websocket" in sys.modules:
        return False
    if not any(isinstance(f, _RefuseNativeWebSocketHelpers) for f in sys.meta_path):
        sys.meta_path.insert(0, _RefuseNativeWebSocketHelpers())
    return True


def tls_needed(config: Any) -> bool:
    return bool(config.server.tls.cert) or config.mediamtx.api_url.startswith("https://")


def skip_tls_stack_if_unused(config: Any) -> bool:
    """Install the hook when TLS is unused and pyOpenSSL is not loaded yet; return whether it was."""
    if tls_needed(config) or any(m in sys.modules for m in _BLOCKED):
        return False
    if not any(isinstance(f, _RefuseTLSStack) for f in sys.meta_path):
        sys.meta_path.insert(0, _RefuseTLSStack())
    return True


def trim_heap() -> bool:
    """Return the free glibc heap to the kernel (``malloc_trim(0)``); False where there is none.

    ctypes is already loaded by the dependency stack (cffi, pyudev), so this costs nothing
    resident itself.
    """
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (ImportError, OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    try:
        trim(0)
    except Exception:  # noqa: BLE001 - never let housekeeping fail the service
        log.failure("malloc_trim failed")
        return False
    return True


def schedule_trims(reactor: Any, *, first: float, every: float) -> Any:
    """Run :func:`trim_heap` ``first`` seconds from now, then every ``every`` seconds.

    Returns the LoopingCall (stopped with the reactor); nothing when there is no malloc_trim.
    """
    from twisted.internet.task import LoopingCall

    loop = LoopingCall(trim_heap)
    loop.clock = reactor

    def start() -> None:
        if trim_heap():
            loop.start(every, now=False).addErrback(lambda f: log.failure("heap trimming stopped", f))

    reactor.callLater(first, start)
    return loop
