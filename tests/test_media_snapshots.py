"""camsvc.media.snapshots: sources, fallbacks, errors (fakes); then real ffmpeg and a real RTSP server."""

from __future__ import annotations

import dataclasses
import errno
import os
import struct

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from camsvc.cameras.registry import CONNECTED, DISCONNECTED, ERROR, Camera, CameraRegistry
from camsvc.common.errors import (
    CameraNotFound,
    InsufficientStorage,
    InvalidParams,
    InvalidState,
    MediaMTXUnavailable,
    RateLimitExceeded,
)
from camsvc.config import parse_config_dict
from camsvc.media.files import SNAPSHOTS, FileStore
from camsvc.media.process import ProcessGroup
from camsvc.media.snapshots import SnapshotFailed, Snapshotter, input_format, jpeg_qscale
from tests.support.processes import FakeProcessReactor
from tests.support.rtsp import RTSPSource, rtsp_source_available

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 50
BY_ID = "/dev/v4l/by-id/usb-Acme_Cam_123-video-index0"


def camera(status=CONNECTED, **kw):
    return Camera(
        camera_id="camera0",
        device="/dev/video0",
        status=status,
        links=(BY_ID,),
        path=BY_ID,  # the unique path discovery chose
        default={"format": "YUYV", "width": 640, "height": 480, "fps": 30},
        **kw,
    )


class Bed:
    """A Snapshotter on fakes: process reactor, Clock, registry, temp storage."""

    def __init__(self, tmp_path, config=None, ready=False, critical=False):
        self.config = parse_config_dict(config or {})
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.reactor = FakeProcessReactor()
        self.store = FileStore(str(tmp_path / "rec"), str(tmp_path / "snap"))
        self.cameras = CameraRegistry(self.clock)
        self.cam = self.cameras.put(camera())
        self.ready = ready
        self.critical = critical

        def require_space(kind):
            if self.critical:
                raise InsufficientStorage("full")

        self.snap = Snapshotter(
            processes=ProcessGroup(self.reactor, self.clock),
            store=self.store,
            clock=self.clock,
            cameras=self.cameras,
            config=self.config,
            path_ready=lambda cid: self.ready,
            require_space=require_space,
        )

    def take(self, **kw):
        kw.setdefault("fmt", None)
        kw.setdefault("quality", None)
        kw.setdefault("filename", None)
        box = []
        Deferred.fromCoroutine(self.snap.take(kw.pop("cam", self.cam), **kw)).addBoth(box.append)
        return box

    def files(self):
        d = self.store.dirs[SNAPSHOTS]
        return sorted(os.listdir(d)) if os.path.isdir(d) else []


@pytest.fixture
def bed(tmp_path):
    return Bed(tmp_path)


# -- the quality scale --------------------------------------------------------------


def test_quality_maps_monotonically_onto_ffmpeg_scale():
    scales = [jpeg_qscale(q) for q in range(1, 101)]
    assert scales[0] == 31 and scales[-1] == 2  # 1 = worst, 100 = best
    assert all(a >= b for a, b in zip(scales, scales[1:], strict=False))  # better quality never gives a worse q
    assert set(scales) == set(range(2, 32))  # the whole scale is reachable
    assert jpeg_qscale(85) == 6 and jpeg_qscale(50) == 17


def test_input_format_names():
    assert input_format("YUYV") == "yuyv422" and input_format("MJPG") == "mjpeg" and input_format("H264") == "h264"


# -- commands -------------------------------------------------------------------------


def test_device_command(bed):
    argv = bed.snap.command("device", bed.cam, "jpg", 85)
    text = " ".join(argv)
    assert argv[0] == "ffmpeg"
    assert f"-f v4l2 -input_format yuyv422 -video_size 640x480 -i {BY_ID}" in text
    assert text.endswith("-frames:v 1 -c:v mjpeg -q:v 6 -f image2pipe -")


def test_stream_command_and_png(bed):
    text = " ".join(bed.snap.command("stream", bed.cam, "png", 85))
    assert "-i rtsp://127.0.0.1:8554/camera0" in text and "-rtsp_transport tcp" in text
    assert text.endswith("-frames:v 1 -c:v png -f image2pipe -") and "-q:v" not in text


def test_skip_frames(tmp_path):
    b = Bed(tmp_path, {"snapshots": {"device_skip_frames": 3}})
    argv = b.snap.command("device", b.cam, "jpg", 85)
    assert argv[argv.index("-vf") + 1] == "select=gte(n\\,3)"
    assert "-vf" not in b.snap.command("stream", b.cam, "jpg", 85)


# -- taking ---------------------------------------------------------------------------


def test_from_the_device_when_not_streaming(bed):
    got = bed.take(quality=100)
    proc = bed.reactor.last
    assert BY_ID in proc.argv and "2" == proc.argv[proc.argv.index("-q:v") + 1]
    proc.out(JPEG[:10])
    proc.out(JPEG[10:])
    proc.exit(0)
    (result,) = got
    assert result["source"] == "device" and result["format"] == "jpg" and result["file_size"] == len(JPEG)
    assert result["filename"].startswith("camera0_2023-11-") and result["filename"].endswith(".jpg")
    assert bed.files() == [result["filename"]]
    with open(os.path.join(bed.store.dirs[SNAPSHOTS], result["filename"]), "rb") as fh:
        assert fh.read() == JPEG
    assert bed.clock.getDelayedCalls() == []


def test_from_the_stream_when_the_path_is_ready(tmp_path):
    b = Bed(tmp_path, ready=True)
    got = b.take(fmt="png")
    assert "rtsp://127.0.0.1:8554/camera0" in b.reactor.last.argv
    b.reactor.last.out(PNG)
    b.reactor.last.exit(0)
    assert got[0]["source"] == "stream" and got[0]["filename"].endswith(".png")


def test_busy_device_falls_back_to_the_stream(bed):
    got = bed.take()
    bed.reactor.last.err(b"[video4linux2,v4l2 @ 0x1] ioctl(VIDIOC_S_FMT): Device or resource busy\n")
    bed.reactor.last.exit(1)
    assert len(bed.reactor.spawned) == 2 and "rtsp://127.0.0.1:8554/camera0" in bed.reactor.last.argv
    bed.reactor.last.out(JPEG)
    bed.reactor.last.exit(0)
    assert got[0]["source"] == "stream"


def test_one_timeout_covers_both_attempts(tmp_path):
    b = Bed(tmp_path, {"snapshots": {"timeout": 4}})
    got = b.take()
    b.clock.advance(3)
    b.reactor.last.err(b"Device or resource busy\n")
    b.reactor.last.exit(1)
    b.clock.advance(1)
    assert b.reactor.last.signals == ["KILL"]
    assert got[0].check(SnapshotFailed) and "timed out after 4 s" in got[0].value.message
    assert got[0].value.data["source"] == "stream" and b.files() == []


def test_vanished_device(bed):
    got = bed.take()
    bed.reactor.last.err(b"[video4linux2,v4l2 @ 0x1] Cannot open video device x: No such file or directory\n")
    bed.reactor.last.exit(1)
    assert got[0].check(CameraNotFound) and "vanished" in got[0].value.message


def test_mediamtx_not_answering(tmp_path):
    b = Bed(tmp_path, ready=True)
    got = b.take()
    b.reactor.last.err(b"rtsp://127.0.0.1:8554/camera0: Connection refused\n")
    b.reactor.last.exit(1)
    assert got[0].check(MediaMTXUnavailable)


def test_ffmpeg_error_is_reported_clearly(bed):
    got = bed.take()
    bed.reactor.last.err(b"noise\n[v4l2] Invalid argument\n")
    bed.reactor.last.exit(1)
    err = got[0].value
    assert got[0].check(SnapshotFailed) and err.code == -32603
    assert err.message == "Snapshot of camera0 from the device failed: [v4l2] Invalid argument"
    assert bed.files() == []


def test_no_image_on_success_is_a_failure(bed):
    got = bed.take()
    bed.reactor.last.out(b"not a jpeg")
    bed.reactor.last.exit(0)
    assert got[0].check(SnapshotFailed) and bed.files() == []


def test_timeout_kills_ffmpeg_and_leaves_nothing(bed):
    got = bed.take()
    bed.clock.advance(10)
    assert bed.reactor.last.signals == ["KILL"] and got[0].check(SnapshotFailed)
    assert "timed out" in got[0].value.message and bed.files() == []


def test_refusals_before_any_process(tmp_path):
    b = Bed(tmp_path, critical=True)
    assert b.take()[0].check(InsufficientStorage)
    b.critical = False
    gone = b.cameras.put(camera(status=DISCONNECTED))
    assert b.take(cam=gone)[0].check(CameraNotFound)
    broken = b.cameras.put(camera(status=ERROR, error="probe failed"))
    got = b.take(cam=broken)
    assert got[0].check(InvalidState) and "probe failed" in got[0].value.message
    unprobed = b.cameras.put(Camera(camera_id="camera0", device="/dev/video0"))
    got = b.take(cam=unprobed)
    assert got[0].check(InvalidState) and "no known video mode" in got[0].value.message
    b.cameras.put(camera())
    assert b.take(filename="../../etc/x")[0].check(InvalidParams)
    assert b.take(filename="x.png", fmt="jpg")[0].check(InvalidParams)
    assert b.reactor.spawned == []


def test_client_filename_sanitised_and_never_overwritten(bed):
    names = []
    for _ in range(2):
        got = bed.take(filename="front door.png")
        assert "png" == bed.reactor.last.argv[bed.reactor.last.argv.index("-c:v") + 1]
        bed.reactor.last.out(PNG)
        bed.reactor.last.exit(0)
        names.append(got[0]["filename"])
    assert names == ["front_door.png", "front_door_1.png"]


def test_snapshots_of_one_camera_run_one_at_a_time(bed):
    first = bed.take()
    second = bed.take()
    assert len(bed.reactor.spawned) == 1
    bed.reactor.last.out(JPEG)
    bed.reactor.last.exit(0)
    assert first and len(bed.reactor.spawned) == 2 and not second
    bed.reactor.last.out(JPEG)
    bed.reactor.last.exit(0)
    assert second and first[0]["filename"] != second[0]["filename"]
    assert bed.snap._locks == {}


def test_the_queue_per_camera_is_bounded(tmp_path):
    """Snapshot requests used to queue without bound per camera (each one a waiting ffmpeg)."""
    bed = Bed(tmp_path, {"snapshots": {"max_queued": 2}})
    running = bed.take()
    queued = [bed.take(), bed.take()]
    refused = bed.take()
    assert len(refused) == 1 and isinstance(refused[0].value, RateLimitExceeded), refused
    error = refused[0].value
    assert "busy" in error.message and error.data == {"reason": "busy", "queued": 2, "max_queued": 2}
    other = bed.take(cam=bed.cameras.put(dataclasses.replace(camera(), camera_id="camera1", device="/dev/video1")))
    assert not other and len(bed.reactor.spawned) == 2  # another camera has its own queue
    while bed.reactor.running():
        proc = bed.reactor.running()[0]
        proc.out(JPEG)
        proc.exit(0)
    assert running and all(queued) and other
    again = bed.take()  # the queue has room again
    bed.reactor.last.out(JPEG)
    bed.reactor.last.exit(0)
    assert again and "filename" in again[0]
    assert bed.snap._locks == {}


def test_full_disk_while_saving(bed, monkeypatch):
    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bed.store, "create", full)
    got = bed.take()
    bed.reactor.last.out(JPEG)
    bed.reactor.last.exit(0)
    assert got[0].check(InsufficientStorage)


# -- real ffmpeg ------------------------------------------------------------------------


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG (SOF marker) or PNG (IHDR)."""
    if data.startswith(b"\x89PNG"):
        return struct.unpack(">II", data[16:24])
    pos = 2
    while pos < len(data):
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise AssertionError("no SOF marker")


def real_snapshotter(tmp_path, config, ready=False):
    from twisted.internet import reactor

    cfg = parse_config_dict(config)
    cams = CameraRegistry(reactor)
    cam = cams.put(
        Camera(
            camera_id="camera0",
            device="/dev/video0",
            default={"format": "YUYV", "width": 320, "height": 240, "fps": 15},
        )
    )
    store = FileStore(str(tmp_path / "rec"), str(tmp_path / "snap"))
    snap = Snapshotter(
        processes=ProcessGroup(reactor, reactor),
        store=store,
        clock=reactor,
        cameras=cams,
        config=cfg,
        path_ready=lambda cid: ready,
        require_space=lambda kind: None,
    )
    return snap, cam, store


LAVFI = {"snapshots": {"device_input": "-f lavfi -i testsrc=size={width}x{height}:rate={fps}"}}


@pytest_twisted.ensureDeferred
async def test_real_ffmpeg_from_a_device_source(tmp_path):
    snap, cam, store = real_snapshotter(tmp_path, LAVFI)
    sizes = {}
    for quality in (100, 10):
        shot = await snap.take(cam, fmt=None, quality=quality, filename=f"q{quality}")
        data = open(os.path.join(store.dirs[SNAPSHOTS], shot["filename"]), "rb").read()
        assert data.startswith(b"\xff\xd8\xff") and data.endswith(b"\xff\xd9")
        assert image_size(data) == (320, 240)
        sizes[quality] = len(data)
    assert sizes[100] > sizes[10] * 1.5  # the mapping really changes the encoder's quality
    shot = await snap.take(cam, fmt="png", quality=None, filename=None)
    data = open(os.path.join(store.dirs[SNAPSHOTS], shot["filename"]), "rb").read()
    assert image_size(data) == (320, 240) and shot["source"] == "device"


@pytest_twisted.ensureDeferred
async def test_real_ffmpeg_failure_is_reported(tmp_path):
    snap, cam, store = real_snapshotter(
        tmp_path, {"snapshots": {"device_input": "-f v4l2 -i /dev/camsvc-no-such-video"}}
    )
    with pytest.raises(CameraNotFound, match="vanished"):
        await snap.take(cam, fmt=None, quality=None, filename=None)
    assert not os.path.exists(store.dirs[SNAPSHOTS]) or os.listdir(store.dirs[SNAPSHOTS]) == []


@pytest.fixture(scope="module")
def rtsp_server():
    ok, reason = rtsp_source_available()
    if not ok:
        pytest.skip(reason)
    with RTSPSource(("camera0",), size="320x240", fps=15) as src:
        yield src


@pytest_twisted.ensureDeferred
async def test_real_snapshot_from_a_live_rtsp_stream(tmp_path, rtsp_server):
    snap, cam, store = real_snapshotter(tmp_path, {"mediamtx": {"rtsp_port": rtsp_server.port}}, ready=True)
    shot = await snap.take(cam, fmt="jpg", quality=90, filename=None)
    assert shot["source"] == "stream"
    data = open(os.path.join(store.dirs[SNAPSHOTS], shot["filename"]), "rb").read()
    assert image_size(data) == (320, 240)


@pytest_twisted.ensureDeferred
async def test_real_stream_that_is_not_there(tmp_path, rtsp_server):
    snap, cam, store = real_snapshotter(tmp_path, {"mediamtx": {"rtsp_port": rtsp_server.port}}, ready=True)
    gone = Camera(camera_id="camera7", device="/dev/video7", default=cam.default)
    snap.cameras.put(gone)
    with pytest.raises(SnapshotFailed, match="from the stream failed"):
        await snap.take(gone, fmt=None, quality=None, filename=None)
