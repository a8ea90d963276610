"""MediaMTXStandIn: the /v3 control API with its in-memory configuration, simulated streams and recordings."""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import hmac
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from twisted.internet import defer
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.web.server import NOT_DONE_YET, Site

from tests.support.mediamtx.clip import ensure_clip, split_fmp4
from tests.support.mediamtx.gojson import GoError, _go_quote, go_json, go_time
from tests.support.mediamtx.http import _ROUTES, RecordedRequest, _APIResource, _paginate, _Reply
from tests.support.mediamtx.recordpath import _decode_start, _pattern_regex, common_path, render_record_path
from tests.support.mediamtx.rtsp import _RTSPFactory, _RTSPReaderProtocol
from tests.support.mediamtx.runtime import PathNotServed, Reader, _PathRuntime, _Recorder
from tests.support.mediamtx.schema import (
    _HOT_FIELDS,
    DEFAULTS_PATH,
    VERSION,
    _is_regexp_conf,
    _normalise_defaults,
    _Schema,
    path_name_error,
    validate_path_conf,
)
from tests.support.openapi import OpenAPISpec

log = Logger()

# internal/auth: a wrong password is answered only after this pause.
AUTH_PAUSE_AFTER_ERROR = 2.0


class MediaMTXStandIn:
    """A MediaMTX v1.20.1 stand-in: control API, fake RTSP readers, recordings.

    Collaborators: a reactor (``IReactorTCP`` + ``IReactorTime``; the global
    one by default), :class:`tests.support.openapi.OpenAPISpec` for the
    contract check, ffmpeg (once, via :func:`ensure_clip`) for recordings.

    Test-control API: :meth:`start`, :meth:`stop`, :meth:`restart`,
    :meth:`set_delay`, :meth:`attach_reader`, :meth:`detach_reader`,
    :meth:`start_publisher` / :meth:`stop_publisher`, :meth:`path_state`,
    :meth:`take_violations`, :meth:`clear_requests`, plus the
    :attr:`requests`, :attr:`violations` and :attr:`response_violations` lists.
    """

    def __init__(
        self,
        reactor=None,
        *,
        port: int = 0,
        interface: str = "127.0.0.1",
        rtsp_port: int | None = 0,
        record_root: str | Path | None = None,
        user: str | None = None,
        password: str | None = None,
        delay: float = 0.0,
        static_paths: dict[str, dict] | None = None,
        legacy_replies: bool = False,
        auth_pause: float = AUTH_PAUSE_AFTER_ERROR,
        publish_delay: float = 0.05,
        clip_path: str | Path | None = None,
        spec: OpenAPISpec | None = None,
        validate_responses: bool = True,
        check_requests: bool = True,
        timezone: _dt.tzinfo | None = None,
        publishers: bool = False,
    ):
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.reactor = reactor
        #: Publish mode (:mod:`tests.support.mediamtx.publish`): real runOnDemand
        #: publishers, recordings of what they send.  Needs the RTSP port.
        self.publishers = publishers
        #: The zone recordPath times are rendered in (None: this process's local zone).
        self.timezone = timezone
        self.interface = interface
        self.api_port = port
        self.rtsp_port = rtsp_port
        self.record_root = Path(record_root) if record_root else Path.cwd()
        self.user = user
        self.password = password
        self.delay = delay
        self.legacy_replies = legacy_replies
        self.auth_pause = auth_pause
        self.publish_delay = publish_delay
        self.clip_path = Path(clip_path) if clip_path else None
        self.spec = spec or OpenAPISpec()
        self.validate_responses = validate_responses
        #: False (``--no-spec-check``, the QEMU guest, which has no jsonschema): requests
        #: are not checked against the OpenAPI document (the host-side tests check them).
        self.check_requests = check_requests

        self._path_schema = _Schema(self.spec, "PathConf")
        self._global_schema = _Schema(self.spec, "GlobalConf")
        with open(DEFAULTS_PATH, encoding="utf-8") as f:
            yml = yaml.safe_load(f)
        self._yml_path_defaults = _normalise_defaults(self._path_schema, yml["pathDefaults"])
        self._yml_global = _normalise_defaults(
            self._global_schema,
            {k: v for k, v in yml.items() if k not in ("pathDefaults", "paths")},
        )
        if static_paths is None:
            static_paths = {k: (v or {}) for k, v in (yml.get("paths") or {}).items()}
        self.static_paths: dict[str, dict] = {}
        for name, raw in static_paths.items():
            self.static_paths[name] = self._path_schema.decode(json.dumps(raw or {}).encode())

        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.response_violations: list[str] = []
        self.started: _dt.datetime | None = None
        self.running = False

        self._optional_paths: dict[str, dict] = {}
        self._path_defaults: dict = {}
        self._global: dict = {}
        self._runtimes: dict[str, _PathRuntime] = {}
        self._api_listener = None
        self._rtsp_listener = None
        self._http_factory: WrappingFactory | None = None
        self._rtsp_conns: set[_RTSPReaderProtocol] = set()
        self._pending: set = set()
        self._clip: tuple[bytes, list[bytes]] | None = None
        self._recorders_seen: dict[str, list[_Recorder]] = {}

    # -- lifecycle -------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the control API, e.g. ``http://127.0.0.1:9997``."""
        return f"http://{self.interface}:{self.api_port}"

    def start(self) -> defer.Deferred:
        """Listen (again, on the same ports after the first start) with a fresh
        configuration from the static config and a new ``started`` time."""
        if self.running:
            return defer.succeed(self)
        self._http_factory = WrappingFactory(Site(_APIResource(self)))
        self._api_listener = self.reactor.listenTCP(self.api_port, self._http_factory, interface=self.interface)
        self.api_port = self._api_listener.getHost().port
        if self.rtsp_port is not None:
            self._rtsp_listener = self.reactor.listenTCP(self.rtsp_port, _RTSPFactory(self), interface=self.interface)
            self.rtsp_port = self._rtsp_listener.getHost().port
        self._reset_config()
        self.started = _dt.datetime.fromtimestamp(self.reactor.seconds()).astimezone()
        self.running = True
        log.info(
            "MediaMTX stand-in {version} listening: API {port}, RTSP {rtsp}",
            version=VERSION,
            port=self.api_port,
            rtsp=self.rtsp_port,
        )
        return defer.succeed(self)

    def stop(self) -> defer.Deferred:
        """Die like the process: close ports and every connection (clients then
        get "connection refused"), stop publishers and recordings, forget the
        API-made configuration."""
        if not self.running:
            return defer.succeed(None)
        self.running = False
        waits = []
        for call in list(self._pending):
            if call.active():
                call.cancel()
        self._pending.clear()
        for rt in list(self._runtimes.values()):
            rt.close()
        self._runtimes.clear()
        if self._api_listener is not None:
            waits.append(defer.maybeDeferred(self._api_listener.stopListening))
            self._api_listener = None
        if self._rtsp_listener is not None:
            waits.append(defer.maybeDeferred(self._rtsp_listener.stopListening))
            self._rtsp_listener = None
        if self._http_factory is not None:
            for proto in list(self._http_factory.protocols):
                waits.append(self._connection_lost(proto))
                proto.transport.abortConnection()
        for conn in list(self._rtsp_conns):
            waits.append(conn.lost)
            conn.transport.abortConnection()
        return defer.gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)

    @staticmethod
    def _connection_lost(wrapper) -> defer.Deferred:
        d = defer.Deferred()
        original = wrapper.connectionLost

        def lost(reason):
            try:
                original(reason)
            finally:
                if not d.called:
                    d.callback(None)

        wrapper.connectionLost = lost
        return d

    @defer.inlineCallbacks
    def restart(self):
        """Stop then start: API-made paths are gone and ``started`` changes."""
        yield self.stop()
        # ``started`` must differ even on a coarse clock.
        yield self.start()
        return self

    def reload_config(self) -> None:
        """What MediaMTX does when its configuration file changes: the file's
        configuration again, API-made paths gone, ``started`` unchanged."""
        self._reset_config()

    def set_delay(self, seconds: float) -> None:
        """Delay every later reply by ``seconds`` (0 disables)."""
        self.delay = seconds

    # -- test helpers -------------------------------------------------------------

    def take_violations(self) -> list[str]:
        """Return and clear the spec violations (for tests that send bad requests on purpose)."""
        out, self.violations = self.violations, []
        return out

    def clear_requests(self) -> None:
        self.requests.clear()

    def requests_to(self, method: str | None = None, prefix: str = "") -> list[RecordedRequest]:
        return [r for r in self.requests if (method is None or r.method == method) and r.path.startswith(prefix)]

    @property
    def config_paths(self) -> dict[str, dict]:
        """Effective configuration of every configured path."""
        return {n: self._effective(n) for n in sorted(self._optional_paths)}

    def path_state(self, name: str) -> dict | None:
        """The ``/v3/paths/get`` item of ``name`` (None when there is no such path)."""
        rt = self._runtimes.get(name)
        return rt.api_item() if rt else None

    def attach_reader(self, path: str) -> Reader:
        """Attach a reader as an RTSP client would; raises :class:`PathNotServed`."""
        return self._attach(path, kick=None)

    def detach_reader(self, reader: Reader) -> None:
        rt = self._runtimes.get(reader.path)
        if rt is not None:
            rt.remove_reader(reader)
        reader._settle(PathNotServed("reader left"))

    def start_publisher(self, path: str) -> None:
        """Simulate a (non on-demand) publisher pushing to ``path``."""
        self._runtimes[path].set_ready()

    def stop_publisher(self, path: str) -> None:
        rt = self._runtimes[path]
        rt.set_not_ready()

    def recorded_segments(self, path: str) -> list[Path]:
        """Files the stand-in wrote for ``path`` since it started."""
        return [seg for rec in self._recorders_seen.get(path, []) for seg in rec.segments]

    # -- configuration -------------------------------------------------------------

    def _reset_config(self) -> None:
        self._path_defaults = copy.deepcopy(self._yml_path_defaults)
        self._global = copy.deepcopy(self._yml_global)
        self._global.update(
            {
                "api": True,
                "apiAddress": f":{self.api_port}",
                "rtsp": self.rtsp_port is not None,
            }
        )
        if self.rtsp_port is not None:
            self._global["rtspAddress"] = f":{self.rtsp_port}"
        if self.user is not None:
            self._global["authInternalUsers"] = [
                {
                    "user": "any",
                    "pass": "",
                    "ips": [],
                    "permissions": [
                        {"action": "publish", "path": ""},
                        {"action": "read", "path": ""},
                        {"action": "playback", "path": ""},
                    ],
                },
                {
                    "user": self.user,
                    "pass": self.password or "",
                    "ips": [],
                    "permissions": [
                        {"action": "api", "path": ""},
                        {"action": "metrics", "path": ""},
                        {"action": "pprof", "path": ""},
                    ],
                },
            ]
        self._optional_paths = copy.deepcopy(self.static_paths)
        self._sync_runtimes()

    def _effective(self, name: str, optional: dict | None = None, defaults: dict | None = None) -> dict:
        out = copy.deepcopy(defaults if defaults is not None else self._path_defaults)
        out.update(copy.deepcopy(optional if optional is not None else self._optional_paths[name]))
        out["name"] = name
        return out

    def _validate_all(self, optional_paths: dict, defaults: dict) -> None:
        for name in sorted(optional_paths):
            validate_path_conf(name, self._effective(name, optional_paths[name], defaults))

    def _commit(self, optional_paths: dict, defaults: dict | None = None) -> None:
        defaults = defaults if defaults is not None else self._path_defaults
        self._validate_all(optional_paths, defaults)
        self._optional_paths = optional_paths
        self._path_defaults = defaults
        self._sync_runtimes()

    def _sync_runtimes(self) -> None:
        wanted = {n for n in self._optional_paths if not _is_regexp_conf(n)}
        for name in list(self._runtimes):
            if name not in wanted:
                self._runtimes.pop(name).close()
        for name in sorted(wanted):
            conf = self._effective(name)
            rt = self._runtimes.get(name)
            if rt is None:
                self._runtimes[name] = _PathRuntime(self, name, conf)
                continue
            changed = {k for k in conf if conf[k] != rt.conf.get(k)}
            if not changed:
                continue
            if all(_HOT_FIELDS.match(k) for k in changed):
                rt.conf = conf
                if rt.recorder is not None and changed & {"recordPath", "recordFormat"}:
                    rt.recorder.stop()
                    rt.recorder = None
                rt.update_recording()
            else:
                rt.close()
                self._runtimes[name] = _PathRuntime(self, name, conf)

    def _find_path_conf(self, name: str) -> dict:
        """``conf.FindPathConf``."""
        err = path_name_error(name)
        if err:
            raise GoError(f"invalid path name: {err} ({name})")
        if name in self._optional_paths and not _is_regexp_conf(name):
            return self._effective(name)
        for conf_name in self._optional_paths:
            if conf_name.startswith("~") and re.search(conf_name[1:], name):
                return self._effective(conf_name)
        for conf_name in ("all", "all_others"):
            if conf_name in self._optional_paths:
                return self._effective(conf_name)
        raise GoError(f"path '{name}' is not configured")

    # -- readers -------------------------------------------------------------

    def _attach(self, path: str, kick) -> Reader:
        if not self.running:
            raise PathNotServed("server is stopped")
        rt = self._runtimes.get(path)
        if rt is None:
            raise PathNotServed(f"path '{path}' is not configured")
        reader = Reader(path=path, kick=kick)
        rt.add_reader(reader)
        return reader

    # -- recordings -------------------------------------------------------------

    def _clip_parts(self) -> tuple[bytes, list[bytes]]:
        if self._clip is None:
            clip = self.clip_path or ensure_clip()
            self._clip = split_fmp4(Path(clip).read_bytes())
        return self._clip

    def _abs_record_path(self, p: str) -> Path:
        return Path(os.path.normpath(os.path.join(self.record_root, p)))

    def _segments_of(self, conf: dict, path_name: str) -> list[tuple[_dt.datetime, Path]]:
        ext = ".mp4" if conf["recordFormat"] == "fmp4" else ".ts"
        pattern = str(self._abs_record_path(conf["recordPath"].replace("%path", path_name) + ext))
        base = self._abs_record_path(common_path(conf["recordPath"]))
        rx = _pattern_regex(pattern)
        out = []
        if base.is_dir():
            for dirpath, _, files in os.walk(base):
                for fn in files:
                    full = os.path.join(dirpath, fn)
                    m = rx.match(full)
                    if m:
                        out.append((_decode_start(m), Path(full)))
        out.sort()
        return out

    def _all_paths_with_segments(self) -> list[str]:
        names = set()
        for conf_name in self._optional_paths:
            conf = self._effective(conf_name)
            ext = ".mp4" if conf["recordFormat"] == "fmp4" else ".ts"
            rx = _pattern_regex(str(self._abs_record_path(conf["recordPath"] + ext)))
            base = self._abs_record_path(common_path(conf["recordPath"]))
            if not base.is_dir():
                continue
            for dirpath, _, files in os.walk(base):
                for fn in files:
                    m = rx.match(os.path.join(dirpath, fn))
                    if m and "path" in m.groupdict():
                        name = m.group("path")
                        try:
                            if self._find_path_conf(name)["name"] == conf_name:
                                names.add(name)
                        except GoError:
                            pass
        return sorted(names)

    # -- HTTP plumbing ----------------------------------------------------------

    def _render(self, request):
        body = request.content.read() if request.content is not None else b""
        target = request.uri.decode("latin-1")
        split = urlsplit(target)
        rec = RecordedRequest(
            method=request.method.decode("ascii"),
            target=target,
            path=unquote(split.path),
            query=parse_qs(split.query, keep_blank_values=True),
            headers={
                k.decode("latin-1").lower(): b", ".join(v).decode("latin-1")
                for k, v in request.requestHeaders.getAllRawHeaders()
            },
            body=body,
        )
        rec.spec_errors = self.spec.request_errors(rec.method, target, body, rec.headers) if self.check_requests else []
        if rec.spec_errors:
            msg = f"{rec.method} {target}: " + "; ".join(rec.spec_errors)
            log.warn(  # noqa: G010 - twisted.logger has no .warning
                "request not allowed by the MediaMTX spec: {msg}", msg=msg
            )
            self.violations.append(msg)
        self.requests.append(rec)
        request.responseHeaders.removeHeader(b"server")

        try:
            reply = self._dispatch(rec)
        except Exception:  # noqa: BLE001 - reported as a 500, like a Go handler panic
            log.failure("stand-in handler failed")
            reply = self._error(500, "internal stand-in error")
        rec.status = reply.status
        rec.response_body = reply.body
        # 401 comes from the auth middleware and is undocumented in the spec for every route.
        if (
            self.validate_responses
            and reply.status != 401
            and self.spec.match(rec.method, rec.path)
            and reply.content_type
            and reply.content_type.startswith("application/json")
        ):
            errs = self.spec.response_errors(rec.method, target, reply.status, reply.body)
            if errs:
                self.response_violations.append(f"{rec.method} {target} -> {reply.status}: " + "; ".join(errs))

        wait = reply.pause + self.delay
        if wait <= 0:
            return self._write(request, reply)

        def later():
            self._pending.discard(call)
            if not finished.called:
                body = self._write(request, reply)
                if body:
                    request.write(body)
                request.finish()

        finished = request.notifyFinish()
        call = self.reactor.callLater(wait, later)
        self._pending.add(call)

        def gone(_):
            if call.active():
                call.cancel()
            self._pending.discard(call)

        finished.addErrback(gone)
        return NOT_DONE_YET

    @staticmethod
    def _write(request, reply: _Reply) -> bytes:
        request.setResponseCode(reply.status)
        if reply.content_type:
            request.setHeader(b"content-type", reply.content_type.encode())
        for k, v in reply.headers.items():
            request.setHeader(k.encode(), v.encode())
        return reply.body

    def _ok(self) -> _Reply:
        if self.legacy_replies:
            return _Reply(200, b"", content_type=None)
        return _Reply(200, go_json({"status": "ok"}))

    def _json(self, obj: Any, status: int = 200) -> _Reply:
        return _Reply(status, go_json(obj))

    def _error(self, status: int, message: str) -> _Reply:
        log.info("[API] {message}", message=message)
        if self.legacy_replies:
            return _Reply(status, go_json({"error": message}))
        return _Reply(status, go_json({"status": "error", "error": message}))

    def _not_found_text(self) -> _Reply:
        return _Reply(404, b"404 page not found", content_type="text/plain")

    def _auth(self, rec: RecordedRequest) -> _Reply | None:
        if self.user is None:
            return None
        user = password = ""
        auth = rec.headers.get("authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user = password = ""
        if hmac.compare_digest(user.encode(), self.user.encode()) and hmac.compare_digest(
            password.encode(), (self.password or "").encode()
        ):
            return None
        body = {"status": "error", "error": "authentication error"}
        if not user and not password:
            # internal/auth: no credentials -> AskCredentials -> challenge, no pause.
            return _Reply(
                401,
                go_json(body),
                headers={"WWW-Authenticate": 'Basic realm="mediamtx"'},
            )
        log.info("[API] connection failed to authenticate: invalid credentials")
        return _Reply(401, go_json(body), pause=self.auth_pause)

    def _route(self, method: str, path: str) -> tuple[str, str] | _Reply | None:
        for m, p, wildcard, handler in _ROUTES:
            if m != method:
                continue
            if wildcard and path.startswith(p + "/"):
                return handler, path[len(p) :]
            if not wildcard and path == p:
                return handler, ""
        # gin's RedirectTrailingSlash (before any middleware).
        for m, p, wildcard, _ in _ROUTES:
            if m != method:
                continue
            alt = None
            if wildcard and path == p:
                alt = p + "/"
            elif not wildcard and path == p + "/":
                alt = p
            if alt is not None:
                code = 301 if method == "GET" else 307
                body = b""
                ctype = None
                if method in ("GET", "HEAD"):
                    text = "Moved Permanently" if code == 301 else "Temporary Redirect"
                    body = f'<a href="{alt}">{text}</a>.\n\n'.encode()
                    ctype = "text/html; charset=utf-8"
                return _Reply(code, body, content_type=ctype, headers={"Location": alt})
        return None

    def _dispatch(self, rec: RecordedRequest) -> _Reply:
        if rec.method == "OPTIONS" and rec.headers.get("access-control-request-method"):
            return _Reply(
                204,
                b"",
                content_type=None,
                headers={
                    "Access-Control-Allow-Methods": "OPTIONS, GET, POST, PATCH, DELETE",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type",
                },
            )
        routed = self._route(rec.method, rec.path)
        if isinstance(routed, _Reply):
            return routed
        denied = self._auth(rec)
        if denied is not None:
            return denied
        if routed is None:
            return self._not_found_text()
        handler, param = routed
        try:
            return getattr(self, "_on_" + handler)(rec, param)
        except GoError as e:
            return self._error(400, str(e))

    @staticmethod
    def _param_name(param: str) -> str | None:
        """``paramName``: gin's ``*name`` includes the leading slash."""
        if len(param) < 2 or param[0] != "/":
            return None
        return param[1:]

    # -- handlers ------------------------------------------------------------------

    def _on_info(self, rec, _):
        return self._json({"started": go_time(self.started), "version": VERSION})

    def _on_jwks_refresh(self, rec, _):
        return self._ok()

    def _on_global_get(self, rec, _):
        return self._json(self._global)

    def _on_global_patch(self, rec, _):
        values = self._global_schema.decode(rec.body)
        self._global.update({k: v for k, v in values.items() if not self._global_schema.fields[k].deprecated})
        return self._ok()

    def _on_pathdefaults_get(self, rec, _):
        return self._json({**self._path_defaults, "name": ""})

    def _on_pathdefaults_patch(self, rec, _):
        values = self._path_schema.decode(rec.body)
        defaults = copy.deepcopy(self._path_defaults)
        defaults.update({k: v for k, v in values.items() if k in defaults})
        self._commit(copy.deepcopy(self._optional_paths), defaults)
        return self._ok()

    def _on_config_paths_list(self, rec, _):
        items = [self._effective(n) for n in sorted(self._optional_paths)]
        total = len(items)
        page, count = _paginate(items, rec.query)
        return self._json({"itemCount": total, "pageCount": count, "items": page})

    def _on_config_paths_get(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        if name not in self._optional_paths:
            return self._error(404, "path configuration not found")
        return self._json(self._effective(name))

    def _on_config_paths_add(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        values = self._path_schema.decode(rec.body)
        if name in self._optional_paths:
            return self._error(400, "path already exists")
        paths = copy.deepcopy(self._optional_paths)
        paths[name] = values
        self._commit(paths)
        return self._ok()

    def _on_config_paths_patch(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        values = self._path_schema.decode(rec.body)
        if name not in self._optional_paths:
            return self._error(404, "path not found")
        paths = copy.deepcopy(self._optional_paths)
        paths[name].update(values)
        self._commit(paths)
        return self._ok()

    def _on_config_paths_replace(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        values = self._path_schema.decode(rec.body)
        paths = copy.deepcopy(self._optional_paths)
        paths[name] = values
        self._commit(paths)
        return self._ok()

    def _on_config_paths_delete(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        if name not in self._optional_paths:
            return self._error(404, "path not found")
        paths = copy.deepcopy(self._optional_paths)
        del paths[name]
        self._commit(paths)
        return self._ok()

    def _on_paths_list(self, rec, _):
        items = [self._runtimes[n].api_item() for n in sorted(self._runtimes)]
        total = len(items)
        page, count = _paginate(items, rec.query)
        return self._json({"itemCount": total, "pageCount": count, "items": page})

    def _on_paths_get(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        rt = self._runtimes.get(name)
        if rt is None:
            return self._error(404, "path not found")
        return self._json(rt.api_item())

    def _recording(self, name: str, conf: dict) -> dict:
        return {
            "name": name,
            "segments": [{"start": go_time(t)} for t, _ in self._segments_of(conf, name)],
        }

    def _on_recordings_list(self, rec, _):
        names = self._all_paths_with_segments()
        total = len(names)
        page, count = _paginate(names, rec.query)
        items = [self._recording(n, self._find_path_conf(n)) for n in page]
        return self._json({"itemCount": total, "pageCount": count, "items": items})

    def _on_recordings_get(self, rec, param):
        name = self._param_name(param)
        if name is None:
            return self._error(400, "invalid name")
        conf = self._find_path_conf(name)
        return self._json(self._recording(name, conf))

    def _on_recordings_deletesegment(self, rec, _):
        path_name = rec.query.get("path", [""])[0]
        raw_start = rec.query.get("start", [""])[0]
        try:
            # RFC 3339 as Go parses it; Python 3.10's fromisoformat takes no "Z".
            # Go takes any number of fraction digits; Python 3.10 only 3 or 6.
            text = re.sub(r"Z$", "+00:00", raw_start)
            text = re.sub(r"\.(\d+)", lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
            start = _dt.datetime.fromisoformat(text)
            if start.tzinfo is None or not re.match(r"^\d{4}-\d{2}-\d{2}T", raw_start):
                raise ValueError
        except ValueError:
            return self._error(
                400,
                f"invalid 'start' parameter: parsing time {_go_quote(raw_start)} "
                f'as "2006-01-02T15:04:05Z07:00": cannot parse '
                f'{_go_quote(raw_start)} as "2006"',
            )
        conf = self._find_path_conf(path_name)
        ext = ".mp4" if conf["recordFormat"] == "fmp4" else ".ts"
        target = self._abs_record_path(render_record_path(conf["recordPath"] + ext, path_name, start.astimezone()))
        try:
            os.remove(target)
        except OSError as e:
            return self._error(400, f"remove {target}: {(e.strerror or str(e)).lower()}")
        return self._ok()
