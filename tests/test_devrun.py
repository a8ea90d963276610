"""`make run`'s MediaMTX (tools/devrun.py), offline: the pinned release fetched from a local
server and checked against its checksum, the one-line fallback without network, camsvc
without MediaMTX, and both processes supervised together (the MediaMTX stand-in plays
MediaMTX, started from the generated mediamtx.yml as MediaMTX would be)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import yaml

from tests.support import mediamtx as standin
from tests.support.devrun import alive, children, hermetic_path, http_get, standin_mediamtx, wait_for
from tests.support.mediamtx_process import StandInProcess
from tests.support.server import ROOT, free_port

DEVRUN = ROOT / "tools" / "devrun.py"
PINS = ROOT / "tools" / "mediamtx.sha256"
FRAGMENT = ROOT / "conf" / "mediamtx.yml"
VERSION = "v1.20.1"
AMD64 = f"mediamtx_{VERSION}_linux_amd64.tar.gz"
FAKE_EXE = b"#!/bin/sh\necho fake mediamtx\n"


def fake_release(path: Path) -> str:
    """A release-shaped archive (mediamtx, its sample mediamtx.yml, LICENSE); its SHA-256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data, mode in (
            ("mediamtx", FAKE_EXE, 0o755),
            ("mediamtx.yml", b"logLevel: info\n", 0o644),
            ("LICENSE", b"MIT\n", 0o644),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tf.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


class ReleaseServer:
    """Serves a directory laid out like the release page (``/<version>/<archive>``)."""

    def __init__(self, root: Path):
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def do_GET(self):
                outer.requests.append(self.path)
                super().do_GET()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def release(tmp_path):
    """A fake v1.20.1 amd64 archive on a local HTTP server, and a checksum file pinning it."""
    (tmp_path / "www" / VERSION).mkdir(parents=True)
    digest = fake_release(tmp_path / "www" / VERSION / AMD64)
    pins = tmp_path / "pins.sha256"
    pins.write_text(f"# test pins\n{digest}  {AMD64}\n")
    server = ReleaseServer(tmp_path / "www")
    yield server, pins, digest
    server.close()


def devrun(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DEVRUN), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_pins_are_for_the_pinned_version_and_the_docs_agree():
    lines = [x.split() for x in PINS.read_text().splitlines() if x.strip() and not x.startswith("#")]
    assert lines, "no pinned checksum"
    names = {name for _digest, name in lines}
    assert f"mediamtx_{VERSION}_linux_amd64.tar.gz" in names
    for digest, name in lines:
        assert re.fullmatch(r"[0-9a-f]{64}", digest), name
        assert re.fullmatch(rf"mediamtx_{re.escape(VERSION)}_linux_(amd64|arm64|armv7|armv6)\.tar\.gz", name)
    assert f'VERSION = "{VERSION}"' in DEVRUN.read_text()
    assert f"MediaMTX **{VERSION}**" in (ROOT / "docs" / "mediamtx.md").read_text()
    # The stand-in that plays MediaMTX in the tests is the same release.
    assert standin.VERSION == VERSION


def test_fetch_checks_the_checksum_keeps_only_the_binary_and_caches_it(tmp_path, release):
    server, pins, digest = release
    cache = tmp_path / "cache"
    args = ("--cache", str(cache), "--base-url", server.url, "--checksums", str(pins), "--machine", "x86_64")
    r = devrun(*args, "fetch")
    assert r.returncode == 0, r.stderr
    exe = Path(r.stdout.strip())
    assert exe == cache / f"mediamtx_{VERSION}_linux_amd64" / "mediamtx"
    assert exe.read_bytes() == FAKE_EXE and os.access(exe, os.X_OK)
    assert not (exe.parent / "mediamtx.yml").exists()  # the release's sample config is never unpacked
    assert not list(cache.glob("*.tar.gz*"))  # the archive is not kept
    assert server.requests == [f"/{VERSION}/{AMD64}"]
    assert "SHA-256 verified" in r.stderr
    # Second time: from the cache, no download.
    r = devrun(*args, "fetch")
    assert r.returncode == 0 and Path(r.stdout.strip()) == exe
    assert len(server.requests) == 1
    # A cache made from another archive (the pin changed) is fetched again.
    (exe.parent / "archive.sha256").write_text("0" * 64 + "\n")
    assert devrun(*args, "fetch").returncode == 0
    assert len(server.requests) == 2


def test_fetch_from_a_local_file_refuses_a_wrong_checksum(tmp_path, release):
    _server, _pins, digest = release
    wrong = tmp_path / "wrong.sha256"
    wrong.write_text(f"{'f' * 64}  {AMD64}\n")
    cache = tmp_path / "cache"
    base = (tmp_path / "www").as_uri()
    r = devrun("--cache", str(cache), "--base-url", base, "--checksums", str(wrong), "--machine", "x86_64", "fetch")
    assert r.returncode == 1
    (line,) = r.stderr.splitlines()
    assert line == (
        f"make run: {AMD64} from {base}/{VERSION}/{AMD64} has SHA-256 {digest}, expected {'f' * 64} (pinned); not used"
    )
    assert not list(cache.rglob("mediamtx")) and not list(cache.glob("*.tar.gz*"))
    # The same file with its real checksum is accepted.
    right = tmp_path / "right.sha256"
    right.write_text(f"{digest}  {AMD64}\n")
    r = devrun("--cache", str(cache), "--base-url", base, "--checksums", str(right), "--machine", "x86_64", "fetch")
    assert r.returncode == 0 and Path(r.stdout.strip()).read_bytes() == FAKE_EXE


def test_no_download_without_a_pinned_checksum(tmp_path, release):
    server, pins, _digest = release
    r = devrun(
        "--cache",
        str(tmp_path / "c"),
        "--base-url",
        server.url,
        "--checksums",
        str(pins),
        "--machine",
        "armv7l",
        "fetch",
    )
    assert r.returncode == 1
    (line,) = r.stderr.splitlines()
    assert f"no checksum pinned for mediamtx_{VERSION}_linux_armv7.tar.gz" in line
    assert "MEDIAMTX=/path/to/mediamtx make run" in line
    assert server.requests == []
    r = devrun("--cache", str(tmp_path / "c"), "--machine", "sparc64", "fetch")
    assert r.returncode == 1 and "no Linux build for this machine (sparc64)" in r.stderr


# --- run: camsvc with and without MediaMTX ---------------------------------------------------


class DevRun:
    """``tools/devrun.py run`` as `make run` starts it, on free ports with state in ``tmp``."""

    def __init__(self, tmp: Path, *args: str, env: dict | None = None, api_port: int | None = None, mediamtx=None):
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.port, self.api_port = free_port(), api_port or free_port()
        self.cache = tmp / "cache"
        config = {
            "server": {"host": "127.0.0.1", "port": self.port},
            "auth": {"required": False},
            "storage": {
                k: str(tmp / v)
                for k, v in (("recordings_dir", "rec"), ("snapshots_dir", "snap"), ("state_dir", "state"))
            },
            "discovery": {"enabled": False},
            "mediamtx": {"api_url": f"http://127.0.0.1:{self.api_port}", **(mediamtx or {})},
        }
        self.config = tmp / "camsvc.yaml"
        self.config.write_text(yaml.safe_dump(config))
        # One file for both streams, so that the order of what the processes log is kept.
        self.out = open(tmp / "devrun.log", "w+")
        full_env = {k: v for k, v in os.environ.items() if k != "MEDIAMTX"}
        full_env.update({"PATH": hermetic_path(tmp), "PYTHONPATH": str(ROOT)}, **(env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, str(DEVRUN), "--config", str(self.config), "--cache", str(self.cache), *args, "run"],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=str(tmp),
        )

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health/ready"

    def output(self) -> str:
        """devrun's, camsvc's and MediaMTX's output, in order."""
        self.out.seek(0)
        return self.out.read()

    def devrun_lines(self) -> list[str]:
        return [x for x in self.output().splitlines() if x.startswith("make run:")]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def test_offline_one_line_and_camsvc_runs_without_mediamtx(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: as good as no network
    run = DevRun(tmp_path, "--base-url", dead, "--machine", "x86_64")
    try:
        status, body = wait_for(
            lambda: (s := http_get(run.ready_url)) and "unreachable" in json.dumps(s[1]) and s,
            what="camsvc saying MediaMTX is unreachable",
        )
        assert status == 503
        assert any(r.startswith("mediamtx: MediaMTX API at ") and "unreachable" in r for r in body["reasons"]), body
        (line,) = run.devrun_lines()
        assert line.startswith(f"make run: could not fetch MediaMTX {VERSION} from {dead}/{VERSION}/{AMD64} (")
        assert line.endswith("; camsvc runs without MediaMTX (/health/ready says why)")
        camsvc = children(run.proc.pid)
        assert len(camsvc) == 1  # camsvc alone
    finally:
        rc = run.stop(signal.SIGINT)
    assert rc == 0, run.output()[-3000:]
    assert not alive(camsvc[0])
    assert not list(run.cache.rglob("mediamtx"))


def test_run_starts_mediamtx_from_the_fragment_and_stops_it_after_camsvc(tmp_path):
    run = DevRun(tmp_path, env={"MEDIAMTX": str(standin_mediamtx(tmp_path))})
    try:
        # Ready means MediaMTX answered camsvc with the generated credentials (else 401).
        status, body = wait_for(
            lambda: (s := http_get(run.ready_url)) and s[0] == 200 and s, what="camsvc ready with MediaMTX"
        )
        assert body["checks"]["mediamtx"]["ok"] is True
        kids = children(run.proc.pid)
        assert len(kids) == 2
        mediamtx_pid, camsvc_pid = kids
        generated = yaml.safe_load((run.cache / "mediamtx.yml").read_text())
        fragment = yaml.safe_load(FRAGMENT.read_text())
        assert set(generated) == set(fragment)  # the shipped fragment, filled in
        assert generated["apiAddress"] == f"127.0.0.1:{run.api_port}"
        assert generated["pathDefaults"]["recordPath"] == str(tmp_path / "rec") + "/%path_%Y-%m-%d_%H-%M-%S-%f"
        assert generated["pathDefaults"]["recordDeleteAfter"] == "0s"
        (api_user,) = [u for u in generated["authInternalUsers"] if {"action": "api"} in u["permissions"]]
        assert api_user["user"] == "camsvc"
        assert api_user["pass"] == (run.cache / "api_pass").read_text().strip() != "change-me"
        assert oct((run.cache / "api_pass").stat().st_mode & 0o777) == "0o600"
        assert run.devrun_lines() == [
            f"make run: starting {tmp_path / 'mediamtx-standin'} {run.cache / 'mediamtx.yml'}"
        ]
    finally:
        rc = run.stop(signal.SIGINT)
    assert rc == 0, run.output()[-3000:]
    assert not alive(camsvc_pid) and not alive(mediamtx_pid)
    # camsvc (SIGINT) shut down while MediaMTX was still there; MediaMTX was stopped after it.
    log = run.output()
    assert log.index("Received SIGINT: shutting down") < log.index("Server Shut Down.")
    assert log.index("Server Shut Down.") < log.index("Received SIGTERM, shutting down.")


def test_a_running_mediamtx_is_used_and_a_disabled_one_not_started(tmp_path):
    already = StandInProcess(tmp_path / "standin").start()
    try:
        run = DevRun(tmp_path / "a", api_port=already.port, env={"MEDIAMTX": str(standin_mediamtx(tmp_path))})
        try:
            wait_for(lambda: http_get(run.ready_url)[0] == 200, what="camsvc ready with the running MediaMTX")
            assert len(children(run.proc.pid)) == 1  # camsvc only
            assert run.devrun_lines() == [
                f"make run: something already listens on 127.0.0.1:{already.port} (mediamtx.api_url): "
                "not starting MediaMTX, camsvc uses that"
            ]
        finally:
            assert run.stop() == 0
        assert already.proc.poll() is None  # not ours to stop
    finally:
        already.stop()
    run = DevRun(tmp_path / "b", mediamtx={"enabled": False}, env={"MEDIAMTX": str(standin_mediamtx(tmp_path))})
    try:
        wait_for(lambda: http_get(run.ready_url)[0] == 200, what="camsvc ready without MediaMTX")
        assert len(children(run.proc.pid)) == 1
        assert run.devrun_lines() == ["make run: mediamtx.enabled is false: camsvc runs without MediaMTX"]
    finally:
        assert run.stop() == 0


def test_mediamtx_ending_first_leaves_camsvc_running(tmp_path):
    run = DevRun(tmp_path, env={"MEDIAMTX": str(standin_mediamtx(tmp_path))})
    try:
        wait_for(lambda: http_get(run.ready_url)[0] == 200, what="camsvc ready with MediaMTX")
        mediamtx_pid, camsvc_pid = children(run.proc.pid)
        os.kill(mediamtx_pid, signal.SIGKILL)
        wait_for(lambda: len(run.devrun_lines()) == 2, what="devrun noticing")
        assert run.devrun_lines()[1] == "make run: MediaMTX exited with status -9; camsvc goes on without it"
        status, body = wait_for(lambda: (s := http_get(run.ready_url))[0] == 503 and s, what="readiness")
        assert any(r.startswith("mediamtx: ") for r in body["reasons"])
        assert alive(camsvc_pid) and run.proc.poll() is None
    finally:
        rc = run.stop(signal.SIGTERM)
    assert rc == 0
    assert not alive(camsvc_pid)


def test_the_documented_fragment_is_the_shipped_file():
    text = (ROOT / "docs" / "mediamtx.md").read_text()
    section = text[text.index("## The `mediamtx.yml` fragment") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    assert yaml.safe_load(block) == yaml.safe_load(FRAGMENT.read_text())


def test_the_generated_configuration_uses_only_keys_mediamtx_knows(tmp_path):
    """Every key make run writes exists in MediaMTX v1.20.1's own mediamtx.yml (the reference
    copy in tests/data), at the same place: a misspelt key would stop MediaMTX at start."""
    conf = tmp_path / "camsvc.yaml"
    conf.write_text(yaml.safe_dump({"storage": {"recordings_dir": str(tmp_path / "rec")}}))
    r = devrun("--config", str(conf), "--cache", str(tmp_path / "cache"), "config")
    assert r.returncode == 0, r.stderr
    generated = yaml.safe_load(Path(r.stdout.strip()).read_text())
    reference = yaml.safe_load((ROOT / "tests" / "data" / "mediamtx.yml").read_text())
    assert set(generated) <= set(reference)
    assert set(generated["pathDefaults"]) <= set(reference["pathDefaults"])
    user_keys = set().union(*(u.keys() for u in reference["authInternalUsers"]))
    actions = {"publish", "read", "playback", "api", "metrics", "pprof"}
    for user in generated["authInternalUsers"]:
        assert set(user) <= user_keys
        assert {p["action"] for p in user["permissions"]} <= actions
    assert generated["api"] is True and generated["apiAddress"] == "127.0.0.1:9997"


def test_killing_devrun_stops_both(tmp_path):
    run = DevRun(tmp_path, env={"MEDIAMTX": str(standin_mediamtx(tmp_path))})
    try:
        wait_for(lambda: http_get(run.ready_url)[0] == 200, what="camsvc ready with MediaMTX")
        kids = children(run.proc.pid)
        assert len(kids) == 2
    finally:
        run.proc.kill()
        run.proc.wait()
    wait_for(lambda: not any(alive(k) for k in kids), what="camsvc and MediaMTX ending with devrun")
