"""The MediaMTX stand-in's publish mode: a real ffmpeg publisher started by runOnDemand, recorded, killed.

A path configured as camsvc configures it (``runOnDemand`` with ``$RTSP_PORT``
and ``$MTX_PATH``, ``runOnDemandRestart``, ``record``), its command a real
ffmpeg publisher (a lavfi test source instead of ``/dev/videoN``).  Killing
that publisher stands for an unplugged camera: the path must go not ready and
the segment on disk must be whole and readable by ffprobe.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pytest
import pytest_twisted

from tests.support import fixtures as _fixtures
from tests.support.mediamtx import split_fmp4
from tests.support.mediamtx.publish import RESTART_PAUSE
from tests.support.waiting import eventually

mediamtx_clip = _fixtures.mediamtx_clip
mediamtx_standin_factory = _fixtures.mediamtx_standin_factory

if shutil.which("ffmpeg") is None and os.environ.get("CI") != "true":
    pytest.skip("ffmpeg is not installed", allow_module_level=True)

PUBLISH = (
    "ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc=size=160x120:rate=15"
    " -c:v libx264 -pix_fmt yuv420p -preset ultrafast -tune zerolatency"
    " -g 15 -f rtsp rtsp://localhost:$RTSP_PORT/$MTX_PATH"
)


def _probe(path) -> dict:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)["streams"][0]


def _conf(rec_dir) -> dict:
    return {
        "source": "publisher",
        "runOnDemand": PUBLISH,
        "runOnDemandRestart": True,
        "runOnDemandCloseAfter": "1s",
        "record": True,
        "recordPath": str(rec_dir / "%path_%Y-%m-%d_%H-%M-%S-%f"),
        "recordFormat": "fmp4",
        "recordSegmentDuration": "1h",
        "recordDeleteAfter": "0s",
    }


@pytest_twisted.ensureDeferred
async def test_publisher_killed_while_recording(mediamtx_standin_factory, tmp_path):
    s = await mediamtx_standin_factory(publishers=True)
    rec_dir = tmp_path / "recs"
    assert await _post(s, "/v3/config/paths/add/cam0", _conf(rec_dir)) == 200
    rt = s._runtimes["cam0"]
    assert s.path_state("cam0")["ready"] is False and rt.command is None

    reader = s.attach_reader("cam0")  # as camsvc's keep-alive reader does
    await eventually(lambda: rt.command is not None and rt.command.proto is not None, what="runOnDemand started")
    await reader.when_ready()
    assert s.path_state("cam0")["ready"] is True
    # What the publisher sends is what is recorded: fragments arrive, one file grows.
    await eventually(lambda: rt.publish_session and rt.publish_session.fragments >= 3, 60, what="3 fragments")
    segs = s.recorded_segments("cam0")
    assert len(segs) == 1 and segs[0].parent == rec_dir

    # "Unplug": the publisher dies without a word (SIGKILL, no TEARDOWN).
    os.kill(rt.command.proto.transport.pid, signal.SIGKILL)
    await eventually(lambda: s.path_state("cam0")["ready"] is False, 30, what="path not ready")
    assert rt.recorder is None and rt.publish_session is None
    size = segs[0].stat().st_size
    init, frags = split_fmp4(segs[0].read_bytes())
    assert init[4:8] == b"ftyp" and len(frags) >= 3
    assert sum(len(f) for f in frags) + len(init) == size  # whole boxes only
    stream = _probe(segs[0])
    assert stream["codec_name"] == "h264" and int(stream["nb_read_frames"]) >= 30

    # runOnDemandRestart with a reader still there: the command runs again after
    # MediaMTX's pause and a new segment starts; the old one is left as it was.
    assert rt.command is not None and rt.command.starts == 1
    await eventually(lambda: s.path_state("cam0")["ready"], RESTART_PAUSE + 60, what="publisher restarted")
    assert rt.command.starts == 2
    await eventually(lambda: len(s.recorded_segments("cam0")) == 2, 60, what="a second segment")
    assert segs[0].stat().st_size == size

    # The last reader leaves: after runOnDemandCloseAfter the command gets SIGINT, the
    # path is not ready, and the last segment is readable too.
    s.detach_reader(reader)
    await eventually(lambda: s.path_state("cam0")["ready"] is False and rt.command is None, 30, what="closed")
    last = s.recorded_segments("cam0")[-1]
    assert _probe(last)["codec_name"] == "h264"
    code = json.loads((await _get(s, "/v3/recordings/get/cam0")).decode())
    assert len(code["segments"]) == 2


@pytest_twisted.ensureDeferred
async def test_publish_to_unconfigured_path_is_refused(mediamtx_standin_factory):
    from twisted.internet import reactor
    from twisted.internet.protocol import ClientCreator, Protocol

    s = await mediamtx_standin_factory(publishers=True)

    class Client(Protocol):
        def __init__(self):
            from twisted.internet.defer import Deferred

            self.got = Deferred()

        def dataReceived(self, data):
            if not self.got.called:
                self.got.callback(data)

    c = await ClientCreator(reactor, Client).connectTCP("127.0.0.1", s.rtsp_port)
    sdp = b"v=0\r\n"
    c.transport.write(
        f"ANNOUNCE rtsp://127.0.0.1:{s.rtsp_port}/nope RTSP/1.0\r\nCSeq: 1\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n".encode()
        + sdp
    )
    assert (await c.got).startswith(b"RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n")
    c.transport.loseConnection()


async def _post(s, path, body) -> int:
    import treq

    resp = await treq.post(
        s.url + path, data=json.dumps(body).encode(), headers={"Content-Type": ["application/json"]}, persistent=False
    )
    await resp.content()
    return resp.code


async def _get(s, path) -> bytes:
    import treq

    resp = await treq.get(s.url + path, persistent=False)
    return await resp.content()
