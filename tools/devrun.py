"""`make run`: camsvc in the foreground with a real MediaMTX beside it, for development.

    python tools/devrun.py [--config conf/dev.yaml] [run]   MediaMTX + camsvc (python -m camsvc), stopped together
    python tools/devrun.py fetch                             only get the pinned release (cached); print its path
    python tools/devrun.py config                            only write the development mediamtx.yml

Which MediaMTX: ``$MEDIAMTX`` (a path) if set, else ``mediamtx`` on ``PATH`` (installed), else
the pinned release (:data:`VERSION`) for this machine's architecture, downloaded once from
MediaMTX's release page into ``.cache/mediamtx/`` (never system-wide) and checked against the
SHA-256 pinned in ``tools/mediamtx.sha256``.  Without network access, or for an architecture
without a pinned checksum, it says in one line what it could not get and runs camsvc alone
(``/health/ready`` then says MediaMTX is unreachable).

The MediaMTX configuration is generated from the shipped fragment ``conf/mediamtx.yml``: the
API address from camsvc's ``mediamtx.api_url``, the recordings under camsvc's
``storage.recordings_dir``, and a password for camsvc's API user, generated once into
``.cache/mediamtx/api_pass`` and handed to camsvc as ``CAMSVC_MEDIAMTX__API_PASS``.

``run`` supervises both processes: camsvc starts once MediaMTX's API answers (10 s at most);
SIGINT, SIGTERM and SIGHUP (reload) are passed on to camsvc; when camsvc has ended, MediaMTX
is stopped (SIGTERM, then SIGKILL after 5 s: it outlives camsvc's shutdown, which stops
recordings through its API) and devrun exits with camsvc's status; when MediaMTX ends first,
camsvc goes on without it (one line says so); if devrun itself is killed, both get SIGTERM.

A developer tool, not part of the service: it uses only the standard library, PyYAML and
camsvc's configuration loader.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import yaml  # noqa: E402

from camsvc.config import ConfigError, load_config  # noqa: E402

#: The MediaMTX release camsvc is written against (its openapi.yaml is in tests/data).
VERSION = "v1.20.1"
RELEASES = "https://github.com/bluenviron/mediamtx/releases/download"
CHECKSUMS = os.path.join(ROOT, "tools", "mediamtx.sha256")
FRAGMENT = os.path.join(ROOT, "conf", "mediamtx.yml")
CACHE = os.path.join(ROOT, ".cache", "mediamtx")
#: platform.machine() -> the architecture in MediaMTX's archive names.
ARCHES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "armv7",
    "armv8l": "armv7",
    "armv6l": "armv6",
}
FETCH_TIMEOUT = 30.0
STOP_GRACE = 5.0
READY_WAIT = 10.0  # for MediaMTX's API before camsvc starts (it copes either way)


class FetchError(Exception):
    """MediaMTX could not be provided; the message is the one line shown to the user."""


def shown(path: str) -> str:
    """A path as the user reads it: relative inside the project, else absolute."""
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith("..") else rel


def say(msg: str) -> None:
    print(f"make run: {msg}", file=sys.stderr, flush=True)


# --- finding or fetching MediaMTX -------------------------------------------------------


def asset_name(machine: str | None = None) -> str:
    arch = ARCHES.get((machine or platform.machine()).lower())
    if arch is None:
        raise FetchError(
            f"MediaMTX publishes no Linux build for this machine ({machine or platform.machine()}); "
            "install one yourself and run MEDIAMTX=/path/to/mediamtx make run"
        )
    return f"mediamtx_{VERSION}_linux_{arch}.tar.gz"


def pinned_checksums(path: str = CHECKSUMS) -> dict[str, str]:
    """``{archive name: sha256}`` from a sha256sum-format file (``#`` comments allowed)."""
    sums = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            digest, name = line.split(None, 1)
            sums[name.lstrip("*")] = digest.lower()
    return sums


def cached_binary(cache: str, name: str, digest: str) -> str | None:
    """The binary unpacked earlier from the archive with this checksum, if still there."""
    d = os.path.join(cache, name[: -len(".tar.gz")])
    exe = os.path.join(d, "mediamtx")
    try:
        with open(os.path.join(d, "archive.sha256")) as f:
            ok = f.read().strip() == digest
    except OSError:
        return None
    return exe if ok and os.access(exe, os.X_OK) else None


def download(url: str, dest: str) -> str:
    """Download ``url`` to ``dest``; return the SHA-256 of what was written."""
    h = hashlib.sha256()
    tmp = dest + ".part"
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as r, open(tmp, "wb") as out:
            while True:
                chunk = r.read(1 << 16)
                if not chunk:
                    break
                h.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as e:
        with _suppress():
            os.unlink(tmp)
        reason = getattr(e, "reason", None) or e
        raise FetchError(f"could not fetch MediaMTX {VERSION} from {url} ({reason})") from e
    os.replace(tmp, dest)
    return h.hexdigest()


def unpack(archive: str, into: str) -> str:
    """Extract only the ``mediamtx`` executable (and LICENSE) from the release archive:
    never its sample mediamtx.yml, never a path outside ``into``."""
    os.makedirs(into, exist_ok=True)
    exe = os.path.join(into, "mediamtx")
    with tarfile.open(archive, "r:gz") as tf:
        for member in ("mediamtx", "LICENSE"):
            try:
                info = tf.getmember(member)
            except KeyError:
                if member == "mediamtx":
                    raise FetchError(f"{os.path.basename(archive)} holds no 'mediamtx' executable") from None
                continue
            if not info.isfile():
                raise FetchError(f"{os.path.basename(archive)}: '{member}' is not a regular file")
            src = tf.extractfile(info)
            tmp = os.path.join(into, member + ".tmp")
            with src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
            os.chmod(tmp, 0o755 if member == "mediamtx" else 0o644)
            os.replace(tmp, os.path.join(into, member))
    return exe


def fetch(cache: str = CACHE, base_url: str = RELEASES, checksums: str = CHECKSUMS, machine: str | None = None) -> str:
    """Path of the pinned MediaMTX for this machine, downloading and verifying it once."""
    name = asset_name(machine)
    digest = pinned_checksums(checksums).get(name)
    if digest is None:
        raise FetchError(
            f"no checksum pinned for {name} in {shown(checksums)}, so it is not downloaded; "
            "install MediaMTX yourself and run MEDIAMTX=/path/to/mediamtx make run"
        )
    exe = cached_binary(cache, name, digest)
    if exe:
        return exe
    os.makedirs(cache, exist_ok=True)
    url = f"{base_url.rstrip('/')}/{VERSION}/{name}"
    archive = os.path.join(cache, name)
    got = download(url, archive)
    try:
        if got != digest:
            raise FetchError(f"{name} from {url} has SHA-256 {got}, expected {digest} (pinned); not used")
        d = os.path.join(cache, name[: -len(".tar.gz")])
        exe = unpack(archive, d)
        with open(os.path.join(d, "archive.sha256"), "w") as f:
            f.write(digest + "\n")
        say(f"fetched MediaMTX {VERSION} from {url} (SHA-256 verified) into {shown(d)}/")
    except (tarfile.TarError, EOFError) as e:
        raise FetchError(f"{name} from {url} is not a readable archive ({e})") from e
    finally:
        with _suppress():
            os.unlink(archive)
    return exe


def find_mediamtx(**fetch_args) -> str:
    """``$MEDIAMTX``, else an installed ``mediamtx``, else the pinned download."""
    env = os.environ.get("MEDIAMTX")
    if env:
        if not os.access(env, os.X_OK):
            raise FetchError(f"MEDIAMTX={env} is not an executable")
        return env
    installed = shutil.which("mediamtx")
    if installed:
        return installed
    return fetch(**fetch_args)


# --- the development configuration --------------------------------------------------------


def api_pass(cache: str) -> str:
    """The password of camsvc's MediaMTX API user, generated once (0600)."""
    path = os.path.join(cache, "api_pass")
    try:
        with open(path) as f:
            value = f.read().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    os.makedirs(cache, exist_ok=True)
    value = secrets.token_urlsafe(18)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.replace(path + ".tmp", path)
    return value


def api_address(api_url: str) -> tuple[str, int]:
    u = urllib.parse.urlsplit(api_url)
    return u.hostname or "127.0.0.1", u.port or 9997


def mediamtx_config(fragment: str, api_url: str, recordings_dir: str, user: str, password: str) -> dict:
    """The fragment with camsvc's API address, API user and recordings directory filled in."""
    with open(fragment, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    host, port = api_address(api_url)
    conf["apiAddress"] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    for u in conf.get("authInternalUsers") or []:
        if u.get("pass") is None:
            u["pass"] = ""
        if any(p.get("action") == "api" for p in u.get("permissions") or []) and u.get("user") != "any":
            u["user"], u["pass"] = user, password
    pd = conf.setdefault("pathDefaults", {}) or {}
    pd["recordPath"] = os.path.join(os.path.abspath(recordings_dir), "%path_%Y-%m-%d_%H-%M-%S-%f")
    conf["pathDefaults"] = pd
    if not conf.get("paths"):
        conf["paths"] = {}
    return conf


def write_config(config_path: str | None, cache: str = CACHE, fragment: str = FRAGMENT) -> tuple[str, dict]:
    """Write ``<cache>/mediamtx.yml``; return its path and the environment camsvc needs."""
    cfg = load_config(config_path)
    user = cfg.mediamtx.api_user or "camsvc"
    password = cfg.mediamtx.api_pass or api_pass(cache)
    conf = mediamtx_config(fragment, cfg.mediamtx.api_url, cfg.storage.recordings_dir, user, password)
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, "mediamtx.yml")
    header = (
        f"# Generated by tools/devrun.py from {os.path.relpath(fragment, ROOT)} for `make run`; "
        "edits are overwritten.\n"
    )
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(header)
        yaml.safe_dump(conf, f, sort_keys=False, default_flow_style=False)
    os.replace(path + ".tmp", path)
    return path, {"CAMSVC_MEDIAMTX__API_USER": user, "CAMSVC_MEDIAMTX__API_PASS": password}


def port_in_use(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --- supervising ---------------------------------------------------------------------------


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when devrun dies, even by SIGKILL (Linux prctl)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(cmd: list[str], env: dict | None = None) -> subprocess.Popen:
    # Own sessions: a terminal's Ctrl-C reaches devrun alone, which passes it on once.
    return subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, preexec_fn=_die_with_parent)


def stop(proc: subprocess.Popen, grace: float = STOP_GRACE) -> int:
    if proc.poll() is None:
        with _suppress():
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with _suppress():
                proc.kill()
    return proc.wait()


def run(config_path: str | None, camsvc_cmd: list[str], fetch_args: dict) -> int:
    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        say(f"invalid configuration: {e}")
        return 78
    for d in (cfg.storage.state_dir, cfg.storage.recordings_dir, cfg.storage.snapshots_dir):
        os.makedirs(d, exist_ok=True)
    env = dict(os.environ)
    mediamtx = camsvc = None
    stopping = []  # the signal that arrived before camsvc was started

    def forward(signum, _frame):
        # To camsvc only: MediaMTX must outlive camsvc's shutdown (recordings are stopped
        # through its API), and is stopped once camsvc has exited.
        if camsvc is None:
            stopping.append(signum)
        elif camsvc.poll() is None:
            with _suppress():
                camsvc.send_signal(signum)

    host, port = api_address(cfg.mediamtx.api_url)
    exe = None
    if not cfg.mediamtx.enabled:
        say("mediamtx.enabled is false: camsvc runs without MediaMTX")
    elif port_in_use(host, port):
        say(f"something already listens on {host}:{port} (mediamtx.api_url): not starting MediaMTX, camsvc uses that")
    else:
        try:
            exe = find_mediamtx(**fetch_args)  # Ctrl-C during a download ends devrun at once
        except FetchError as e:
            say(f"{e}; camsvc runs without MediaMTX (/health/ready says why)")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, forward)
    if exe:
        yml, extra = write_config(config_path, cache=fetch_args.get("cache", CACHE))
        env.update(extra)
        say(f"starting {shown(exe)} {shown(yml)}")
        mediamtx = spawn([exe, yml])
        deadline = time.monotonic() + READY_WAIT
        while not stopping and mediamtx.poll() is None and time.monotonic() < deadline:
            if port_in_use(host, port):
                break
            time.sleep(0.05)
    try:
        if stopping:
            return 128 + stopping[0]
        camsvc = spawn(camsvc_cmd, env)
        while camsvc.poll() is None:
            if mediamtx is not None and mediamtx.poll() is not None:
                say(f"MediaMTX exited with status {mediamtx.returncode}; camsvc goes on without it")
                mediamtx = None
            time.sleep(0.1)
    finally:
        if mediamtx is not None:
            stop(mediamtx)
    return camsvc.returncode if camsvc.returncode >= 0 else 128 - camsvc.returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tools/devrun.py", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=os.path.join(ROOT, "conf", "dev.yaml"), help="camsvc's configuration")
    ap.add_argument("--cache", default=CACHE, help="where the MediaMTX download and generated files live")
    ap.add_argument("--base-url", default=os.environ.get("CAMSVC_MEDIAMTX_RELEASES", RELEASES))
    ap.add_argument("--checksums", default=CHECKSUMS, help="pinned SHA-256 of the release archives")
    ap.add_argument("--machine", default=None, help="architecture to fetch for (default: this machine's)")
    ap.add_argument("command", nargs="?", default="run", choices=("run", "fetch", "config"))
    ap.add_argument("camsvc", nargs=argparse.REMAINDER, help="after --: the camsvc command (default: python -m camsvc)")
    args = ap.parse_args(argv)
    # Relative paths (the configuration's run/ directories) are the project's, as in `make run`.
    args.config, args.cache, args.checksums = map(os.path.abspath, (args.config, args.cache, args.checksums))
    os.chdir(ROOT)
    fetch_args = {"cache": args.cache, "base_url": args.base_url, "checksums": args.checksums, "machine": args.machine}
    if args.command == "fetch":
        try:
            print(fetch(**fetch_args))
        except FetchError as e:
            say(str(e))
            return 1
        return 0
    if args.command == "config":
        print(write_config(args.config, cache=args.cache)[0])
        return 0
    # As the unit starts it: twistd's runner with camsvc as its only subcommand (camsvc/__main__.py).
    cmd = [c for c in args.camsvc if c != "--"] or [
        sys.executable,
        "-m",
        "camsvc",
        "--nodaemon",
        "--pidfile=",
        "camsvc",
        "--config",
        args.config,
    ]
    try:
        return run(args.config, cmd, fetch_args)
    except KeyboardInterrupt:  # before anything was started
        return 130


if __name__ == "__main__":
    sys.exit(main())
