"""Stream URLs for a camera: where clients play what MediaMTX serves.

The host is ``mediamtx.public_host`` when set, otherwise the host the client
connected to (its Host header), otherwise the local address of its
connection: never a hard-coded localhost.
"""

from __future__ import annotations

from typing import Any


def stream_urls(mediamtx: Any, camera_id: str, host: str) -> dict:
    """``{"rtsp", "webrtc", "hls"}`` for ``camera_id`` as seen from ``host``.

    ``webrtc`` is MediaMTX's WebRTC player page (WHEP at ``.../whep``),
    ``hls`` the HLS playlist (MediaMTX's player page is the same URL without
    ``index.m3u8``).
    """
    host = mediamtx.public_host or host
    return {
        "rtsp": f"rtsp://{host}:{mediamtx.rtsp_port}/{camera_id}",
        "webrtc": f"http://{host}:{mediamtx.webrtc_port}/{camera_id}/",
        "hls": f"http://{host}:{mediamtx.hls_port}/{camera_id}/index.m3u8",
    }
