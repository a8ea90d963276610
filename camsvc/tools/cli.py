"""``camsvc-cli``: camsvc's command-line client.

This module owns the command line: argument parsing, one function per
command on top of :class:`camsvc.tools.client.Client`, the human (table) and
``--json`` renderings, and the mapping of failures to exit codes.  It runs
its own reactor (it is a program, not part of the service).

Exit codes (also in ``docs/clients.md``)::

    0    success
    1    an error reported by camsvc not listed below (internal error, rate limit, ...)
    2    usage: bad command line, or camsvc refused the parameters (-32602)
    3    connection: cannot connect, connection lost, or no answer in time
    4    authentication required or failed (-32001), permission denied (-32003)
    5    not found: camera (-32004) or file (-32009)
    6    invalid state: already recording / not recording (-32005)
    7    unavailable: MediaMTX down (-32006), storage full (-32007),
         not supported (-32008), or the server lacks the method (-32601)
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import datetime
from typing import Any, TextIO
from urllib.parse import quote

from camsvc import __version__
from camsvc.tools.client import (
    DEFAULT_URL,
    Client,
    ClientError,
    ConnectError,
    ConnectionLost,
    DownloadError,
    RequestTimeout,
    RpcError,
)

PROG = "camsvc-cli"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_AUTH = 4
EXIT_NOT_FOUND = 5
EXIT_STATE = 6
EXIT_UNAVAILABLE = 7
EXIT_INTERRUPTED = 130

_EXIT_BY_CODE = {
    -32602: EXIT_USAGE,
    -32001: EXIT_AUTH,
    -32003: EXIT_AUTH,
    -32004: EXIT_NOT_FOUND,
    -32009: EXIT_NOT_FOUND,
    -32005: EXIT_STATE,
    -32006: EXIT_UNAVAILABLE,
    -32007: EXIT_UNAVAILABLE,
    -32008: EXIT_UNAVAILABLE,
    -32601: EXIT_UNAVAILABLE,
}

KINDS = ("recordings", "snapshots")


class CliError(Exception):
    """A failure to report in one line with an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        self.code = code
        super().__init__(message)


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, RpcError):
        return _EXIT_BY_CODE.get(exc.code, EXIT_ERROR)
    if isinstance(exc, DownloadError):
        return {401: EXIT_AUTH, 403: EXIT_AUTH, 404: EXIT_NOT_FOUND}.get(exc.code, EXIT_ERROR)
    if isinstance(exc, (ConnectError, ConnectionLost, RequestTimeout)):
        return EXIT_CONNECTION
    return EXIT_ERROR


def describe(exc: BaseException) -> str:
    """One line for stderr."""
    if isinstance(exc, RpcError):
        if exc.code == -32601:
            return f"this camsvc does not offer that operation ({exc.message}; -32601)"
        return f"{exc.message} ({exc.code})"
    text = str(exc).strip()
    return text or type(exc).__name__


# -- output helpers -------------------------------------------------------------------


def human_size(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop returns at "TB" at the latest


def human_duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def human_time(value: Any) -> str:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            return value
    return "-"


def table(rows: list[list[Any]], headers: list[str]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if c in (None, "") else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


class Output:
    """Where results go: JSON documents or readable text on ``stream``."""

    def __init__(self, as_json: bool, stream: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stream = stream or sys.stdout

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def json(self, value: Any, *, compact: bool = False) -> None:
        if compact:
            self.line(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
        else:
            self.line(json.dumps(value, indent=2, ensure_ascii=False))


def err(text: str) -> None:
    sys.stderr.write(f"{PROG}: {text}\n")
    sys.stderr.flush()


# -- commands ------------------------------------------------------------------------


async def cmd_ping(client: Client, args: argparse.Namespace, out: Output) -> int:
    started = time.monotonic()
    result = await client.call("ping")
    elapsed = (time.monotonic() - started) * 1000
    if out.as_json:
        out.json({"result": result, "round_trip_ms": round(elapsed, 3)})
    else:
        out.line(f"{result} from {client.url} in {elapsed:.1f} ms")
    return EXIT_OK


async def cmd_info(client: Client, args: argparse.Namespace, out: Output) -> int:
    info = await client.call("get_server_info")
    status = await client.call("get_status")
    if out.as_json:
        out.json({"server": info, "status": status})
        return EXIT_OK
    out.line(f"{info.get('name', 'camsvc')} {info.get('version', '?')} (API {info.get('api_version', '?')})")
    out.line(f"status:         {status.get('status')}")
    out.line(f"uptime:         {human_duration(status.get('uptime'))}")
    out.line(f"connections:    {status.get('connections')}")
    out.line(f"authentication: {'required' if info.get('auth_required') else 'not required'}")
    checks = status.get("checks") or {}
    if checks:
        rows = [[name, "ok" if c.get("ok") else "FAILING", c.get("reason") or ""] for name, c in sorted(checks.items())]
        out.line()
        out.line(table(rows, ["CHECK", "STATE", "REASON"]))
    return EXIT_OK


def camera_rows(cameras: list[dict]) -> list[list[Any]]:
    rows = []
    for cam in cameras:
        rows.append(
            [
                cam.get("camera_id"),
                cam.get("status"),
                cam.get("device"),
                cam.get("name"),
                cam.get("resolution"),
                cam.get("fps") or "",
                "REC" if cam.get("recording") else "",
            ]
        )
    return rows


async def cmd_list(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = await client.call("get_camera_list")
    if out.as_json:
        out.json(result)
        return EXIT_OK
    cameras = result.get("cameras") or []
    if not cameras:
        out.line("No cameras.")
        return EXIT_OK
    out.line(table(camera_rows(cameras), ["CAMERA", "STATUS", "DEVICE", "NAME", "RESOLUTION", "FPS", "RECORDING"]))
    total = result.get("total", len(cameras))
    out.line(f"\n{total} camera{'s' if total != 1 else ''}, {result.get('connected', '?')} connected")
    return EXIT_OK


def format_summary(capabilities: Any) -> list[list[Any]]:
    """Rows ``[format, size, rates]`` from a capabilities object."""
    rows = []
    formats = capabilities.get("formats") if isinstance(capabilities, dict) else None
    for fmt in formats or []:
        sizes = fmt.get("sizes") or []
        label = fmt.get("format", "?")
        desc = fmt.get("description") or ""
        if not sizes:
            rows.append([label, desc, "-", "-"])
        for size in sizes:
            fps = size.get("fps") or []
            rates = ", ".join(f"{r:g}" if isinstance(r, (int, float)) else str(r) for r in fps)
            rng = size.get("fps_range")
            if rng:
                rates = (rates + " " if rates else "") + f"({rng.get('min'):g}-{rng.get('max'):g})"
            rows.append([label, desc, f"{size.get('width')}x{size.get('height')}", rates or "-"])
    return rows


async def cmd_status(client: Client, args: argparse.Namespace, out: Output) -> int:
    cam = await client.call("get_camera_status", {"device": args.camera})
    if out.as_json:
        out.json(cam)
        return EXIT_OK
    fields = [
        ("camera", cam.get("camera_id")),
        ("name", cam.get("name")),
        ("status", cam.get("status")),
        ("device", cam.get("device")),
        ("resolution", cam.get("resolution")),
        ("fps", cam.get("fps")),
        ("recording", "yes" if cam.get("recording") else "no"),
    ]
    for key, value in (cam.get("streams") or {}).items():
        fields.append((f"{key} stream", value))
    metrics = cam.get("metrics")
    if isinstance(metrics, dict):
        for key, value in metrics.items():
            if not isinstance(value, (dict, list)):
                fields.append((key.replace("_", " "), value))
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        out.line(f"{key + ':':<{width + 1}} {'-' if value in (None, '') else value}")
    rows = format_summary(cam.get("capabilities"))
    if rows:
        out.line()
        out.line(table(rows, ["FORMAT", "DESCRIPTION", "SIZE", "FPS"]))
    return EXIT_OK


async def cmd_caps(client: Client, args: argparse.Namespace, out: Output) -> int:
    caps = await client.call("get_camera_capabilities", {"device": args.camera})
    if out.as_json:
        out.json(caps)
        return EXIT_OK
    head = [caps.get(k) for k in ("card", "driver", "bus_info") if isinstance(caps, dict) and caps.get(k)]
    if head:
        out.line(" / ".join(str(h) for h in head))
        out.line()
    rows = format_summary(caps)
    out.line(table(rows, ["FORMAT", "DESCRIPTION", "SIZE", "FPS"]) if rows else "No capture formats reported.")
    return EXIT_OK


def control_value(control: dict) -> str:
    value = control.get("value")
    if control.get("type") in ("menu", "integer_menu"):
        for item in control.get("menu") or ():
            if item.get("index") == value:
                label = item.get("name", item.get("value"))
                return f"{value} ({label})"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if control.get("type") == "bitmask":
        return f"0x{value:x}"
    return str(value)


def control_range(control: dict) -> str:
    t = control.get("type")
    if t in ("integer", "int64"):
        step = f" step {control['step']}" if control.get("step", 1) > 1 else ""
        return f"{control.get('minimum')}..{control.get('maximum')}{step}"
    if t in ("menu", "integer_menu"):
        return ", ".join(f"{m['index']}={m.get('name', m.get('value'))}" for m in control.get("menu") or ())
    if t == "bitmask":
        return f"mask 0x{control.get('maximum', 0):x}"
    if t == "boolean":
        return "true/false"
    return ""


async def cmd_controls(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = await client.get_camera_controls(args.camera)
    if out.as_json:
        out.json(result)
        return EXIT_OK
    rows = []
    for group in result.get("classes") or ():
        for c in group.get("controls") or ():
            if not c.get("supported") and not args.all:
                continue
            stored = "" if c.get("stored") is None else str(c["stored"])
            rows.append(
                [
                    c.get("name"),
                    c.get("type"),
                    control_value(c),
                    control_range(c),
                    c.get("default") if c.get("default") is not None else "",
                    ",".join(f for f in c.get("flags") or () if f not in ("slider", "update", "execute_on_write")),
                    stored,
                ]
            )
    out.line(table(rows, ["NAME", "TYPE", "VALUE", "RANGE", "DEFAULT", "FLAGS", "STORED"]) if rows else "No controls.")
    return EXIT_OK


def parse_assignment(text: str) -> tuple[str, Any]:
    """``brightness=140`` -> ("brightness", 140); ``auto_exposure=manual`` -> a string;
    ``true``/``false`` -> booleans; ``0x10`` -> 16."""
    name, sep, raw = text.partition("=")
    if not sep or not name or raw == "":
        raise CliError(f"expected NAME=VALUE, got {text!r}", EXIT_USAGE)
    lowered = raw.lower()
    if lowered in ("true", "on", "yes"):
        return name, True
    if lowered in ("false", "off", "no"):
        return name, False
    try:
        return name, int(raw, 0)
    except ValueError:
        return name, raw


async def cmd_set(client: Client, args: argparse.Namespace, out: Output) -> int:
    values = dict(parse_assignment(a) for a in args.assignments)
    result = await client.set_camera_controls(args.camera, values)
    if out.as_json:
        out.json(result)
        return EXIT_OK
    for name, value in (result.get("controls") or {}).items():
        out.line(f"{name}={json.dumps(value)}")
    return EXIT_OK


async def cmd_reset(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = await client.reset_camera_controls(args.camera, args.names or None)
    if out.as_json:
        out.json(result)
        return EXIT_OK
    for name, value in (result.get("controls") or {}).items():
        out.line(f"{name}={json.dumps(value)}")
    return EXIT_OK


def parse_size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit():
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}")
    return int(w), int(h)


async def cmd_stream(client: Client, args: argparse.Namespace, out: Output) -> int:
    settings: dict = {}
    if args.size:
        settings["width"], settings["height"] = args.size
    for key in ("format", "fps", "encoder", "bitrate", "gop"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    if args.default:
        settings = {k: None for k in ("format", "width", "height", "fps", "encoder", "bitrate", "gop")}
    if settings:
        result = await client.set_stream_settings(args.camera, **settings)
    else:
        result = await client.get_stream_settings(args.camera)
    if out.as_json:
        out.json(result)
        return EXIT_OK
    mode = result.get("active")
    if mode:
        extra = "".join(f" {k} {mode[k]}" for k in ("bitrate", "gop") if mode.get(k))
        custom = " (stored settings)" if mode.get("custom") else " (default)"
        out.line(
            f"{result.get('camera_id')}: {mode['format']} {mode['width']}x{mode['height']}@{mode.get('fps')}"
            f" encoder {mode.get('encoder')}{extra}{custom}"
        )
    else:
        out.line(f"{result.get('camera_id')}: mode not known yet")
    if "changed" in result:
        out.line("publisher restarted with the new settings" if result["changed"] else "unchanged")
    if result.get("encoders"):
        out.line("encoders: " + ", ".join(e["name"] for e in result["encoders"]))
    return EXIT_OK


async def save_download(client: Client, url: str, target: str, out: Output, timeout: float) -> int:
    """Download ``url`` to ``target`` (``-`` = stdout) atomically; return the byte count."""
    if target == "-":
        stream = sys.stdout.buffer
        written = await client.download(url, stream, timeout=timeout)
        stream.flush()
        return written
    partial = f"{target}.part"
    try:
        fh = open(partial, "wb")
    except OSError as exc:
        raise CliError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        with fh:
            written = await client.download(url, fh, timeout=timeout)
        os.replace(partial, target)
    except BaseException:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise
    return written


def local_name(filename: str) -> str:
    """A safe local file name for a server-side name (never a path)."""
    name = os.path.basename(filename.replace("\\", "/")) or "download"
    return name if name not in (".", "..") else "download"


async def cmd_snapshot(client: Client, args: argparse.Namespace, out: Output) -> int:
    params: dict = {"device": args.camera}
    if args.format:
        params["format"] = args.format
    if args.quality is not None:
        params["quality"] = args.quality
    if args.name:
        params["filename"] = args.name
    result = await client.call("take_snapshot", params, timeout=max(client.timeout, 30.0))
    saved = None
    if not args.no_download:
        url = result.get("download_url") or f"/files/snapshots/{quote(result.get('filename', ''))}"
        target = args.output or local_name(result.get("filename") or "snapshot.jpg")
        written = await save_download(client, url, target, out, timeout=max(client.timeout, 60.0))
        saved = {"path": target, "bytes": written}
    if out.as_json:
        if saved is not None:
            result = dict(result, saved_to=None if saved["path"] == "-" else os.path.abspath(saved["path"]))
        if saved is None or saved["path"] != "-":
            out.json(result)
        return EXIT_OK
    if saved is None:
        out.line(f"Snapshot {result.get('filename')} ({human_size(result.get('file_size'))}) taken on the server")
    elif saved["path"] != "-":
        out.line(f"Snapshot {result.get('filename')} saved to {saved['path']} ({human_size(saved['bytes'])})")
    return EXIT_OK


async def cmd_record(client: Client, args: argparse.Namespace, out: Output) -> int:
    params: dict = {"device": args.camera}
    if args.duration is not None:
        params["duration"] = args.duration
    if args.format:
        params["format"] = args.format
    queue = client.notification_queue() if args.wait else None
    result = await client.call("start_recording", params, timeout=max(client.timeout, 30.0))
    if out.as_json:
        out.json(result, compact=args.wait)
    else:
        until = f", stops after {human_duration(args.duration)}" if args.duration else ", until `stop`"
        out.line(f"Recording {result.get('camera_id') or args.camera} to {result.get('filename')}{until}")
    if queue is None:
        return EXIT_OK
    camera_id = result.get("camera_id") or result.get("device")
    while True:
        method, params = await queue.get()
        if method != "recording_status_update" or not isinstance(params, dict):
            continue
        if camera_id not in (params.get("camera_id"), params.get("device")):
            continue
        status = str(params.get("status", "")).upper()
        if status in ("STARTED", "RECORDING"):
            continue
        if out.as_json:
            out.json(params, compact=True)
        else:
            out.line(
                f"Recording {params.get('filename') or result.get('filename')} {status.lower()}"
                f" ({human_duration(params.get('duration'))})"
            )
        return EXIT_OK if status == "STOPPED" else EXIT_ERROR


async def cmd_stop(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = await client.call("stop_recording", {"device": args.camera}, timeout=max(client.timeout, 30.0))
    if out.as_json:
        out.json(result)
    else:
        out.line(
            f"Stopped recording {result.get('camera_id') or args.camera}: {result.get('filename')}"
            f" ({human_duration(result.get('duration'))}, {human_size(result.get('file_size'))})"
        )
    return EXIT_OK


async def cmd_files(client: Client, args: argparse.Namespace, out: Output) -> int:
    kinds = [args.kind] if args.kind else list(KINDS)
    params: dict = {"limit": args.limit, "offset": args.offset}
    if args.camera:
        params["device"] = args.camera
    results = {}
    for kind in kinds:
        results[kind] = await client.call(f"list_{kind}", params)
    if out.as_json:
        out.json(results[args.kind] if args.kind else results)
        return EXIT_OK
    for i, kind in enumerate(kinds):
        result = results[kind]
        files = result.get("files") or []
        if i:
            out.line()
        total = result.get("total", len(files))
        out.line(f"{kind.capitalize()}: {total}")
        if files:
            headers = ["NAME", "SIZE", "MODIFIED"] + (["DURATION"] if kind == "recordings" else [])
            rows = []
            for f in files:
                row = [f.get("filename"), human_size(f.get("file_size")), human_time(f.get("modified_time"))]
                if kind == "recordings":
                    row.append(human_duration(f.get("duration")))
                rows.append(row)
            out.line(table(rows, headers))
            shown_to = result.get("offset", 0) + len(files)
            if total > shown_to:
                out.line(f"... {total - shown_to} more (use --offset {shown_to})")
    return EXIT_OK


def guess_kind(name: str) -> list[str]:
    ext = os.path.splitext(name)[1].lower()
    if ext in (".mp4", ".mkv", ".ts", ".m4s"):
        return ["recordings", "snapshots"]
    if ext in (".jpg", ".jpeg", ".png"):
        return ["snapshots", "recordings"]
    return list(KINDS)


async def find_file(client: Client, name: str, kind: str | None) -> tuple[str, dict]:
    """Which list holds ``name`` and its info (download_url if the server gives one).

    Each list is asked in turn (the likelier first, by extension); "not found"
    (-32009) and "not a name of this list" (-32602, e.g. a .jpg asked of the
    recordings) move on to the next.  Without the info methods (-32601) the
    download falls back to ``/files/<kind>/<name>``.
    """
    candidates = [kind] if kind else guess_kind(name)
    lacking = []
    for candidate in candidates:
        method = "get_recording_info" if candidate == "recordings" else "get_snapshot_info"
        try:
            return candidate, await client.call(method, {"filename": name})
        except RpcError as exc:
            if exc.code == -32601:
                lacking.append(candidate)
            elif kind or exc.code not in (-32009, -32602):
                raise
    if lacking:
        return lacking[0], {}
    raise CliError(f"no recording or snapshot named {name!r}", EXIT_NOT_FOUND)


async def cmd_download(client: Client, args: argparse.Namespace, out: Output) -> int:
    kind, info = await find_file(client, args.name, args.kind)
    url = info.get("download_url") or f"/files/{kind}/{quote(args.name)}"
    target = args.output or local_name(args.name)
    written = await save_download(client, url, target, out, timeout=max(client.timeout, 300.0))
    if target == "-":
        return EXIT_OK
    if out.as_json:
        out.json({"filename": args.name, "kind": kind, "saved_to": os.path.abspath(target), "bytes": written})
    else:
        out.line(f"Saved {args.name} to {target} ({human_size(written)})")
    return EXIT_OK


async def cmd_delete(client: Client, args: argparse.Namespace, out: Output) -> int:
    kind, _info = await find_file(client, args.name, args.kind)
    method = "delete_recording" if kind == "recordings" else "delete_snapshot"
    result = await client.call(method, {"filename": args.name})
    if out.as_json:
        out.json(result)
    else:
        out.line(f"Deleted {kind[:-1]} {args.name}")
    return EXIT_OK


def describe_notification(method: str, params: Any) -> str:
    p = params if isinstance(params, dict) else {}
    if method == "camera_status_update":
        mode = ""
        if p.get("resolution"):
            mode = f" {p.get('resolution')}@{p.get('fps')}"
        name = f' "{p.get("name")}"' if p.get("name") else ""
        rec = " REC" if p.get("recording") else ""
        return f"{p.get('camera_id')} {p.get('status')} {p.get('device')}{name}{mode}{rec}"
    if method == "recording_status_update":
        extra = f" ({human_duration(p.get('duration'))})" if p.get("duration") is not None else ""
        return f"{p.get('camera_id') or p.get('device')} {p.get('status')} {p.get('filename') or ''}{extra}".rstrip()
    if method == "camera_controls_update":
        changes = " ".join(f"{c.get('name')}={control_value(c)}" for c in p.get("controls") or ())
        return f"{p.get('camera_id')} controls {changes}"
    return json.dumps(params, separators=(",", ":"), ensure_ascii=False)


async def cmd_watch(client: Client, args: argparse.Namespace, out: Output) -> int:
    queue = client.notification_queue()
    wanted = set(args.method or [])
    seen = 0
    width = max(len(m) for m in ("camera_status_update", "recording_status_update", "system_status_update"))
    err(f"watching {client.url} for notifications (Ctrl-C to stop)")
    while args.count is None or seen < args.count:
        method, params = await queue.get()
        if wanted and method not in wanted:
            continue
        seen += 1
        if out.as_json:
            out.json({"method": method, "params": params}, compact=True)
        else:
            stamp = datetime.now().strftime("%H:%M:%S")
            out.line(f"{stamp}  {method:<{width}}  {describe_notification(method, params)}")
    return EXIT_OK


COMMANDS = {
    "ping": cmd_ping,
    "info": cmd_info,
    "list": cmd_list,
    "status": cmd_status,
    "caps": cmd_caps,
    "controls": cmd_controls,
    "set": cmd_set,
    "reset": cmd_reset,
    "stream": cmd_stream,
    "snapshot": cmd_snapshot,
    "record": cmd_record,
    "stop": cmd_stop,
    "files": cmd_files,
    "download": cmd_download,
    "delete": cmd_delete,
    "watch": cmd_watch,
}


# -- argument parsing ----------------------------------------------------------------


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def int_range(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


EPILOG = """\
exit status: 0 ok, 1 other server error, 2 usage / invalid parameters,
3 connection failed or timed out, 4 authentication / permission,
5 camera or file not found, 6 invalid state (already / not recording),
7 unavailable (MediaMTX down, storage full, not supported), 130 interrupted.
"""


def add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--url",
        default=default(os.environ.get("CAMSVC_URL") or DEFAULT_URL),
        help=f"camsvc WebSocket URL (env CAMSVC_URL; default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=default(os.environ.get("CAMSVC_TOKEN") or None),
        help="JWT or API key to authenticate with (env CAMSVC_TOKEN); none for a server without authentication",
    )
    parser.add_argument(
        "--cafile",
        metavar="FILE",
        default=default(os.environ.get("CAMSVC_CAFILE") or None),
        help="PEM certificate(s) to trust for wss:// and https:// (env CAMSVC_CAFILE; default: the system CAs)",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print JSON (one document, or one line per event)"
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=default(10.0), help="seconds to wait for the server (default 10)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="log protocol details to stderr"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Command-line client for camsvc's JSON-RPC WebSocket API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_global_options(parser, defaults=True)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # The same options are accepted after the command too (`camsvc-cli list --json`).
    common = argparse.ArgumentParser(add_help=False)
    add_global_options(common, defaults=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub.add_parser("ping", parents=[common], help="check that camsvc answers")
    sub.add_parser("info", parents=[common], help="server version, health and readiness checks")
    sub.add_parser("list", parents=[common], help="list cameras")
    p = sub.add_parser("status", parents=[common], help="one camera's state, streams and capabilities")
    p.add_argument("camera", metavar="CAM", help="camera id (camera0), /dev/videoN or /dev/v4l/by-id/... path")
    p = sub.add_parser("caps", parents=[common], help="one camera's formats, frame sizes and rates")
    p.add_argument("camera", metavar="CAM")
    p = sub.add_parser("controls", parents=[common], help="one camera's V4L2 controls and their values")
    p.add_argument("camera", metavar="CAM")
    p.add_argument("--all", action="store_true", help="also list controls of unsupported types")
    p = sub.add_parser("set", parents=[common], help="set controls: NAME=VALUE ... (stored, re-applied on replug)")
    p.add_argument("camera", metavar="CAM")
    p.add_argument("assignments", nargs="+", metavar="NAME=VALUE", help="e.g. brightness=140 auto_exposure=manual")
    p = sub.add_parser("reset", parents=[common], help="return controls to their defaults (all without NAMEs)")
    p.add_argument("camera", metavar="CAM")
    p.add_argument("names", nargs="*", metavar="NAME")
    p = sub.add_parser("stream", parents=[common], help="show or choose a camera's streamed mode and encoder")
    p.add_argument("camera", metavar="CAM")
    p.add_argument("--size", type=parse_size, metavar="WxH", help="frame size, e.g. 1280x720")
    p.add_argument("--fps", type=positive_float, help="frame rate")
    p.add_argument("--format", help="pixel format FourCC, e.g. MJPG")
    p.add_argument("--encoder", help="libx264, copy or h264_v4l2m2m")
    p.add_argument("--bitrate", type=int_range(64, 100000), metavar="KBITS", help="encoder bitrate in kbit/s")
    p.add_argument("--gop", type=int_range(1, 600), metavar="FRAMES", help="keyframe interval")
    p.add_argument("--default", action="store_true", help="forget the stored settings (camsvc's default mode)")
    p = sub.add_parser("snapshot", parents=[common], help="take a snapshot and download it")
    p.add_argument("camera", metavar="CAM")
    p.add_argument("-o", "--output", metavar="FILE", help="where to save it (default: its name, here; - = stdout)")
    p.add_argument("--format", choices=("jpg", "png"), help="image format (default: the server's)")
    p.add_argument("--quality", type=int_range(1, 100), help="JPEG quality 1-100")
    p.add_argument("--name", help="file name to give it on the server")
    p.add_argument("--no-download", action="store_true", help="only take it; leave it on the server")
    p = sub.add_parser("record", parents=[common], help="start recording")
    p.add_argument("camera", metavar="CAM")
    p.add_argument("--duration", type=positive_float, metavar="S", help="stop automatically after S seconds")
    p.add_argument("--format", help="container format (default: the server's)")
    p.add_argument("--wait", action="store_true", help="wait until the recording stops (with --duration)")
    p = sub.add_parser("stop", parents=[common], help="stop recording")
    p.add_argument("camera", metavar="CAM")
    p = sub.add_parser("files", parents=[common], help="list recordings and/or snapshots")
    p.add_argument("kind", nargs="?", choices=KINDS, help="only this list")
    p.add_argument("--camera", metavar="CAM", help="only this camera's files")
    p.add_argument("--limit", type=int_range(1, 1000), default=100, help="at most this many (default 100)")
    p.add_argument("--offset", type=int_range(0, 2**31), default=0, help="skip this many")
    p = sub.add_parser("download", parents=[common], help="download a recording or snapshot")
    p.add_argument("name", metavar="NAME", help="file name as listed by `files`")
    p.add_argument("-o", "--output", metavar="FILE", help="where to save it (default: NAME, here; - = stdout)")
    p.add_argument("--kind", choices=KINDS, help="which list NAME is in (default: found out)")
    p = sub.add_parser("delete", parents=[common], help="delete a recording or snapshot")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--kind", choices=KINDS, help="which list NAME is in (default: found out)")
    p = sub.add_parser(
        "watch", parents=[common], help="print notifications as they arrive (reconnects if the connection drops)"
    )
    p.add_argument("--count", type=int_range(1, 2**31), help="exit after this many notifications")
    p.add_argument("--method", action="append", metavar="NAME", help="only this notification (repeatable)")
    return parser


# -- running ---------------------------------------------------------------------------


async def run(reactor: Any, args: argparse.Namespace, out: Output) -> int:
    try:
        client = Client(args.url, token=args.token, reactor=reactor, timeout=args.timeout, cafile=args.cafile)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    await client.connect()
    if args.command == "watch":
        # The first connection must work (a wrong URL fails fast); after that, keep trying.
        client.reconnect = True

        def state(name: str, detail: str) -> None:
            if client.closing:
                return
            if name == "disconnected":
                err(f"connection lost ({detail})")
            elif name == "retrying":
                err(f"{client.last_error or 'reconnecting'}; next attempt in {detail} s")
            elif name == "connected":
                err("reconnected")

        client.on_state(state)
    try:
        return await COMMANDS[args.command](client, args, out)
    finally:
        await client.close()


def start_logging(verbose: bool) -> None:
    """Log to stderr: warnings and errors (``-v``: everything); Autobahn's own chatter only with ``-v``."""
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        PredicateResult,
        globalLogBeginner,
        textFileLogObserver,
    )

    levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.debug if verbose else LogLevel.warn)

    def quiet_autobahn(event: dict) -> Any:
        # Handshake failures are explained by the CLI's own one-line message.
        if not verbose and str(event.get("log_namespace", "")).startswith("autobahn"):
            level = event.get("log_level")
            if level is not None and level < LogLevel.critical:
                return PredicateResult.no
        return PredicateResult.maybe

    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [quiet_autobahn, levels])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False, discardBuffer=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    start_logging(args.verbose)

    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    out = Output(args.json)
    outcome: dict = {}

    def finished(result: Any) -> None:
        if hasattr(result, "value"):  # a Failure
            exc = result.value
            outcome["code"] = exit_code_for(exc)
            if isinstance(exc, BrokenPipeError):
                outcome["code"] = EXIT_OK
            elif isinstance(exc, (RpcError, ClientError, CliError)):
                err(describe(exc))
            else:
                err(f"unexpected error: {exc!r}")
                if args.verbose:
                    result.printTraceback(file=sys.stderr)
        else:
            outcome["code"] = result
        if reactor.running:
            reactor.stop()

    def start() -> None:
        ensureDeferred(run(reactor, args, out)).addBoth(finished)

    def interrupted(signum: int, frame: Any) -> None:
        outcome.setdefault("code", EXIT_INTERRUPTED)
        reactor.callFromThread(reactor.stop)

    reactor.callWhenRunning(start)
    reactor.callWhenRunning(signal.signal, signal.SIGINT, interrupted)
    reactor.run()
    code = outcome.get("code", EXIT_INTERRUPTED)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    return code


def entry_point() -> None:
    """The ``camsvc-cli`` console script."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    # Avoid "Exception ignored ... BrokenPipeError" at interpreter exit.
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(code)


if __name__ == "__main__":
    entry_point()
