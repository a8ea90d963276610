"""A real RTSP test source: GStreamer's gst-rtsp-server serving a test pattern (test support).

Run by **Debian's** python (it needs ``gi`` and GStreamer, which are not in the project
venv; ``-I`` keeps the venv's PYTHONPATH out)::

    /usr/bin/python3 -I tests/support/rtsp_source.py --port 0 --path camera0 [--path camera1] \
        [--size 640x480] [--fps 15]

Each ``--path NAME`` is served at ``rtsp://127.0.0.1:PORT/NAME``: ``videotestsrc`` encoded
by ``x264enc`` (H.264, ``yuv420p``, a key frame every ``fps`` frames, zero-latency tune)
like camsvc's on-demand publisher produces.  The media is shared between readers and
built on the first one.  ``--port 0`` picks a free port.  Once listening it prints one
line ``READY <port>`` on stdout; it runs until stdin closes or it gets SIGTERM/SIGINT.

Debian packages: gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-base (videotestsrc,
videoconvert), gstreamer1.0-plugins-ugly (x264enc), gstreamer1.0-plugins-good
(rtph264pay), python3-gi.  The venv-side driver is :class:`tests.support.rtsp.RTSPSource`.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--fps", type=int, default=15)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    Gst.init(None)
    loop = GLib.MainLoop()
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    launch = (
        f"( videotestsrc is-live=true pattern=smpte ! video/x-raw,width={width},height={height},"
        f"framerate={args.fps}/1 ! videoconvert ! video/x-raw,format=I420 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} bitrate=1000 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    for path in args.path or ["camera0"]:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(True)
        mounts.add_factory("/" + path.strip("/"), factory)
    if server.attach(None) == 0:
        sys.stderr.write("rtsp_source: cannot listen\n")
        return 1
    print(f"READY {server.get_bound_port()}", flush=True)

    def stop(*_a):
        loop.quit()
        return False

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, stop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, stop)
    GLib.io_add_watch(GLib.IOChannel.unix_new(sys.stdin.fileno()), GLib.PRIORITY_DEFAULT, GLib.IO_HUP, stop)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
