"""MediaMTX faults: the process SIGKILLed and restarted, its configuration reloaded.

Injected: ``FAULT_MEDIAMTX_KILLS`` (100) SIGKILLs of a MediaMTX stand-in process
(``python -m tests.support.mediamtx``, same ports on restart) under an in-process camsvc
with two cameras, one of them recording; ``FAULT_MEDIAMTX_RELOADS`` (20) configuration
reloads (API-made paths dropped, ``started`` unchanged).  Must survive: after every
restart both paths are back, with ``record: true`` on the recording camera, within 5 s;
after every reload within a few health intervals; nothing camsvc made is left missing.
"""

from __future__ import annotations

import json
import os
import signal
import statistics

import pytest_twisted
import treq
from twisted.internet import reactor

from camsvc.config import parse_config_dict
from camsvc.tap import build
from tests.support.cameras import acme_camera as cam
from tests.support.mediamtx_process import StandInProcess
from tests.support.waiting import eventually

KILLS = int(os.environ.get("FAULT_MEDIAMTX_KILLS", "100"))
RELOADS = int(os.environ.get("FAULT_MEDIAMTX_RELOADS", "20"))


def config(tmp_path, api_url: str, rtsp_port: int, reconcile_interval: float = 30.0):
    return parse_config_dict(
        {
            "server": {"host": "127.0.0.1", "endpoint": "tcp:0:interface=127.0.0.1"},
            "auth": {"required": False},
            "mediamtx": {
                "api_url": api_url,
                "rtsp_port": rtsp_port,
                "health_interval": 0.5,
                "reconcile_interval": reconcile_interval,
                "request_timeout": 1.0,
            },
            "storage": {
                "state_dir": str(tmp_path / "state"),
                "recordings_dir": str(tmp_path / "recordings"),
                "snapshots_dir": str(tmp_path / "snapshots"),
            },
            "discovery": {"enabled": False},
        }
    )


async def paths(url: str) -> dict:
    try:
        resp = await treq.get(f"{url}/v3/config/paths/list?itemsPerPage=1000", persistent=False, timeout=2)
        body = json.loads(await resp.content())
    except Exception:  # noqa: BLE001 - down: no paths
        return {}
    return {item["name"]: item for item in body.get("items", [])}


@pytest_twisted.ensureDeferred
async def test_mediamtx_sigkilled_and_restarted_many_times(tmp_path):
    standin = StandInProcess(tmp_path / "mediamtx")
    standin.spawn()
    await eventually(standin.poll_ready, timeout=20, what="stand-in up")
    app = build(config(tmp_path, standin.url, standin.rtsp_port), reactor)
    app.service.startService()
    backs: list[float] = []
    try:
        await eventually(lambda: app.mediamtx.available, what="MediaMTX contact")
        app.cameras.put(cam(0))
        app.cameras.put(cam(1))
        await app.mediamtx.set_recording("camera1", True)

        async def restored() -> bool:
            have = await paths(standin.url)
            return {"camera0", "camera1"} <= set(have) and have["camera1"].get("record") is True

        await eventually_async(restored, timeout=10, what="paths made")
        for i in range(KILLS):
            standin.proc.send_signal(signal.SIGKILL)
            standin.stop(signal.SIGKILL)
            standin.spawn()
            await eventually(standin.poll_ready, timeout=20, what=f"stand-in back (kill {i + 1})")
            t0 = reactor.seconds()
            await eventually_async(restored, timeout=5.0, what=f"paths back within 5 s (kill {i + 1})")
            backs.append(reactor.seconds() - t0)
        assert app.mediamtx.monitor.restarts >= KILLS
    finally:
        await app.service.stopService()
        standin.stop()
    assert standin.spec_violations() == []
    print(
        f"\nMediaMTX SIGKILLed {KILLS} times: paths back after p50 {statistics.median(backs):.3f} s, "
        f"max {max(backs):.3f} s (limit 5 s)"
    )


@pytest_twisted.ensureDeferred
async def test_mediamtx_configuration_reloaded_many_times(tmp_path, mediamtx_standin):
    app = build(config(tmp_path, mediamtx_standin.url, mediamtx_standin.rtsp_port, 600.0), reactor)
    app.service.startService()
    backs: list[float] = []
    try:
        await eventually(lambda: app.mediamtx.available, what="MediaMTX contact")
        app.cameras.put(cam(0))
        await eventually(lambda: "camera0" in mediamtx_standin.config_paths, what="path made")
        await app.mediamtx.set_recording("camera0", True)
        for i in range(RELOADS):
            mediamtx_standin.reload_config()
            t0 = reactor.seconds()
            await eventually(
                lambda: mediamtx_standin.config_paths.get("camera0", {}).get("record") is True,
                timeout=5.0,
                what=f"path back after reload {i + 1}",
            )
            backs.append(reactor.seconds() - t0)
        assert app.mediamtx.monitor.reloads_detected == RELOADS and app.mediamtx.monitor.restarts == 0
    finally:
        await app.service.stopService()
    print(
        f"\nMediaMTX configuration reloaded {RELOADS} times: path back after p50 "
        f"{statistics.median(backs):.3f} s, max {max(backs):.3f} s (health_interval 0.5 s)"
    )


async def eventually_async(predicate, timeout: float, what: str, interval: float = 0.05):
    from twisted.internet.task import deferLater

    deadline = reactor.seconds() + timeout
    while True:
        if await predicate():
            return
        if reactor.seconds() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await deferLater(reactor, interval, lambda: None)
