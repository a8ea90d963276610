# Snapshots, recordings and files (included by the top-level Makefile).
#
# Tests take snapshots with Debian's ffmpeg (in APT_PACKAGES already) from a real RTSP
# server: GStreamer's gst-rtsp-server driven by tests/support/rtsp_source.py under
# /usr/bin/python3 (python3-gi), with x264enc (-ugly) and rtph264pay (-good).
APT_PACKAGES += gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-ugly python3-gi


# Snapshot latency (live RTSP stream, idle device source) and start_recording -> first
# segment on disk, p50/p90/max over 20 runs; figures in docs/performance.md.
.PHONY: bench-media
bench-media: venv
	$(PY) bench/media.py
