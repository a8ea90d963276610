"""Desired path configuration per camera and the semantic comparison (pure functions)."""

from __future__ import annotations

import shlex

import pytest

from camsvc.cameras.registry import CONNECTED, DISCONNECTED, ERROR, Camera
from camsvc.config import ConfigError, parse_config_dict
from camsvc.mediamtx.desired import (
    ADD,
    DELETE,
    NOTHING,
    PATCH,
    REPLACE,
    choose_mode,
    desired_path,
    differences,
    format_duration,
    parse_duration,
    plan_action,
    publish_command,
    record_path,
)

CAPS = {
    "formats": [
        {"format": "MJPG", "sizes": [{"width": 1280, "height": 720, "fps": [30, 15]}]},
        {"format": "YUYV", "sizes": [{"width": 1280, "height": 720, "fps": [10]}]},
        {"format": "H264", "sizes": [{"width": 1280, "height": 720, "fps": [25, 15]}]},
    ]
}


def camera(**kw) -> Camera:
    base = dict(
        camera_id="camera0",
        device="/dev/video0",
        status=CONNECTED,
        links=(
            "/dev/v4l/by-path/pci-0000:00:14.0-usb-0:1:1.0-video-index0",
            "/dev/v4l/by-id/usb-Acme_Cam_123-video-index0",
        ),
        path="/dev/v4l/by-id/usb-Acme_Cam_123-video-index0",  # discovery's unique path
        capabilities=CAPS,
        default={"format": "MJPG", "width": 1280, "height": 720, "fps": 30},
    )
    base.update(kw)
    return Camera(**base)


def config(**mediamtx):
    return parse_config_dict(
        {
            "mediamtx": mediamtx,
            "storage": {"recordings_dir": "/srv/rec/", "state_dir": "/tmp/s", "snapshots_dir": "/tmp/p"},
            "recording": {"segment_duration": 600},
        }
    )


def test_default_command_transcodes_the_chosen_mode_from_the_by_id_link():
    cmd = publish_command(camera(), config().mediamtx)
    args = shlex.split(cmd)
    assert args[args.index("-i") + 1] == "/dev/v4l/by-id/usb-Acme_Cam_123-video-index0"
    assert args[args.index("-input_format") + 1] == "mjpeg"
    assert args[args.index("-video_size") + 1] == "1280x720"
    assert args[args.index("-framerate") + 1] == "30"
    assert args[args.index("-g") + 1] == "30"
    assert args[args.index("-pix_fmt") + 1] == "yuv420p"
    assert "libx264" in args and "zerolatency" in args
    assert args[-1] == "rtsp://localhost:$RTSP_PORT/$MTX_PATH"


def test_node_path_is_used_without_links_and_odd_names_are_quoted():
    cmd = publish_command(camera(links=(), path=""), config().mediamtx)
    assert " -i /dev/video0 " in cmd
    odd = "/dev/v4l/by-id/usb-A B'c-video-index0"
    cmd = publish_command(camera(links=(odd,), path=odd), config().mediamtx)
    args = shlex.split(cmd)
    assert args[args.index("-i") + 1] == "/dev/v4l/by-id/usb-A B'c-video-index0"


def test_fractional_and_missing_rates():
    cmd = publish_command(
        camera(default={"format": "YUYV", "width": 640, "height": 480, "fps": 7.5}), config().mediamtx
    )
    assert "-input_format yuyv422" in cmd and "-framerate 7.5" in cmd and "-g 8" in cmd
    cmd = publish_command(
        camera(default={"format": "YUYV", "width": 640, "height": 480, "fps": None}), config().mediamtx
    )
    assert "-framerate 30" in cmd


def test_passthrough_prefers_h264_at_the_same_size_then_mjpeg():
    mode, copy = choose_mode(camera(), passthrough=True)
    assert copy and mode == {"format": "H264", "width": 1280, "height": 720, "fps": 25}
    cmd = publish_command(camera(), config(passthrough=True).mediamtx)
    assert "-input_format h264" in cmd and "-c:v copy" in cmd and "libx264" not in cmd
    # No H.264 at that size: MJPEG (the chosen format) goes through as is.
    caps = {"formats": [f for f in CAPS["formats"] if f["format"] != "H264"]}
    mode, copy = choose_mode(camera(capabilities=caps), passthrough=True)
    assert copy and mode["format"] == "MJPG" and mode["fps"] == 30
    # Raw-only camera: transcoded even when passthrough is allowed.
    raw = camera(
        capabilities={"formats": [CAPS["formats"][1]]},
        default={"format": "YUYV", "width": 1280, "height": 720, "fps": 10},
    )
    assert choose_mode(raw, passthrough=True) == ({"format": "YUYV", "width": 1280, "height": 720, "fps": 10}, False)
    # Not allowed: always transcoded.
    assert choose_mode(camera(), passthrough=False)[1] is False


def test_desired_path_has_publisher_on_demand_and_recording_fields():
    want = desired_path(camera(), config(), recording=True)
    assert want == {
        "source": "publisher",
        "runOnDemand": publish_command(camera(), config().mediamtx),
        "runOnDemandRestart": True,
        "record": True,
        "recordPath": "/srv/rec/%path_%Y-%m-%d_%H-%M-%S-%f",
        "recordFormat": "fmp4",
        "recordSegmentDuration": "600s",
        "recordDeleteAfter": "0s",
    }
    assert desired_path(camera(), config())["record"] is False


@pytest.mark.parametrize("status", [DISCONNECTED, ERROR])
def test_only_connected_cameras_with_a_mode_get_a_path(status):
    assert desired_path(camera(status=status), config()) is None
    assert desired_path(camera(default=None), config()) is None


def test_record_path_gives_flat_names():
    assert record_path("/var/lib/camsvc/recordings") == "/var/lib/camsvc/recordings/%path_%Y-%m-%d_%H-%M-%S-%f"


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("", 0),
        ("0s", 0),
        ("0", 0),
        ("1h0m0s", 3600),
        ("3600s", 3600),
        ("1d", 86400),
        ("1d2h", 93600),
        ("1m30.5s", 90.5),
        ("500ms", 0.5),
        (10, 10),
        ("bogus", None),
        ("1x", None),
        (True, None),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_format_duration():
    assert format_duration(3600.0) == "3600s" and format_duration(0.5) == "0.5s"


def test_differences_are_semantic_not_textual():
    want = desired_path(camera(), config())
    # What MediaMTX reads back: normalised durations, zero as "", plus every other field.
    have = dict(want, recordSegmentDuration="10m0s", recordDeleteAfter="", runOnDemandCloseAfter="10s", name="camera0")
    assert differences(want, have) == set()
    assert differences(want, dict(have, record=True)) == {"record"}
    assert differences(want, dict(have, recordDeleteAfter="1d")) == {"recordDeleteAfter"}
    assert differences(want, dict(have, runOnDemand="ffmpeg other")) == {"runOnDemand"}
    missing = dict(have)
    del missing["runOnDemandRestart"]
    assert differences(want, missing) == {"runOnDemandRestart"}


def test_plan_action():
    want = desired_path(camera(), config())
    have = dict(want, recordSegmentDuration="10m0s", recordDeleteAfter="")
    assert plan_action(want, None) == (ADD, want)
    assert plan_action(want, have) == (NOTHING, None)
    assert plan_action(None, have) == (DELETE, None)
    assert plan_action(None, None) == (NOTHING, None)
    # Only recording fields differ: patch them (viewers stay connected).
    assert plan_action(dict(want, record=True), have) == (PATCH, {"record": True})
    # Anything else: replace with the whole desired configuration.
    assert plan_action(want, dict(have, source="rtsp://elsewhere")) == (REPLACE, want)


def test_publish_command_templates_are_checked_at_load():
    with pytest.raises(ConfigError, match=r"mediamtx.publish_command: unknown placeholder \{dev\}"):
        parse_config_dict({"mediamtx": {"publish_command": "ffmpeg -i {dev}"}})
    with pytest.raises(ConfigError, match="mediamtx.passthrough_command: is not a valid template"):
        parse_config_dict({"mediamtx": {"passthrough_command": "ffmpeg -i {device"}})
    with pytest.raises(ConfigError, match="mediamtx.publish_command: must not be empty"):
        parse_config_dict({"mediamtx": {"publish_command": " "}})
    ok = parse_config_dict({"mediamtx": {"publish_command": "my-publisher {camera_id} {device} $MTX_PATH"}})
    assert publish_command(camera(), ok.mediamtx).startswith("my-publisher camera0 /dev/v4l/by-id/")
