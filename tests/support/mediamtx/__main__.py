"""``python -m tests.support.mediamtx``: run the MediaMTX stand-in on its own (prints ``READY <port>``)."""

from __future__ import annotations

import datetime as _dt
import sys

import yaml
from twisted.logger import Logger

from tests.support.mediamtx.standin import AUTH_PAUSE_AFTER_ERROR, MediaMTXStandIn

log = Logger()

# ---------------------------------------------------------------------------
# standalone
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import argparse

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    ap = argparse.ArgumentParser(prog="python -m tests.support.mediamtx", description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=None, help="API port (default: the --config's apiAddress, else 9997)")
    ap.add_argument("--interface", default="127.0.0.1")
    ap.add_argument(
        "--rtsp-port",
        type=int,
        default=None,
        help="fake RTSP port for readers (0 = any)",
    )
    ap.add_argument(
        "--record-root",
        default=None,
        help="directory relative recordPaths resolve against",
    )
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds to wait before every reply")
    ap.add_argument("--auth-pause", type=float, default=AUTH_PAUSE_AFTER_ERROR)
    ap.add_argument("--utc-offset", type=float, default=None, help="render recordPath times at this UTC offset (hours)")
    ap.add_argument(
        "--config",
        help="a mediamtx.yml: its 'paths' are the static configuration; apiAddress and the api user apply too",
    )
    ap.add_argument(
        "--legacy-replies",
        action="store_true",
        help="empty OK bodies, errors without 'status'",
    )
    ap.add_argument(
        "--publishers",
        action="store_true",
        help="publish mode: run each path's runOnDemand command and record what it publishes"
        " (needs ffmpeg and the RTSP port; see tests.support.mediamtx.publish)",
    )
    ap.add_argument(
        "--no-spec-check",
        action="store_true",
        help="neither requests nor replies checked against MediaMTX's OpenAPI document (no jsonschema needed)",
    )
    args = ap.parse_args(argv)

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    static = None
    if args.config:
        # Read like MediaMTX reads its mediamtx.yml: the static paths, and (unless given
        # on the command line) the API address and the user holding the api permission.
        with open(args.config, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
        static = {k: (v or {}) for k, v in (conf.get("paths") or {}).items()}
        host, _, port = str(conf.get("apiAddress") or "").rpartition(":")
        if args.port is None and port:
            args.port = int(port)
            args.interface = host.strip("[]") or "0.0.0.0"
        for u in conf.get("authInternalUsers") or []:
            if u.get("user") != "any" and any(p.get("action") == "api" for p in u.get("permissions") or []):
                if args.user is None:
                    args.user, args.password = u["user"], u.get("pass") or ""
                break
    if args.port is None:
        args.port = 9997
    standin = MediaMTXStandIn(
        reactor,
        port=args.port,
        interface=args.interface,
        rtsp_port=args.rtsp_port,
        record_root=args.record_root,
        user=args.user,
        password=args.password,
        delay=args.delay,
        static_paths=static,
        legacy_replies=args.legacy_replies,
        auth_pause=args.auth_pause,
        publishers=args.publishers,
        validate_responses=not args.no_spec_check,
        check_requests=not args.no_spec_check,
        timezone=None if args.utc_offset is None else _dt.timezone(_dt.timedelta(hours=args.utc_offset)),
    )

    def ready(_):
        line = f"READY {standin.api_port}"
        if standin.rtsp_port is not None:
            line += f" rtsp={standin.rtsp_port}"
        print(line, flush=True)

    def failed(f):
        log.failure("stand-in failed to start", f)
        reactor.stop()

    reactor.callWhenRunning(lambda: standin.start().addCallbacks(ready, failed))
    reactor.addSystemEventTrigger("before", "shutdown", standin.stop)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
