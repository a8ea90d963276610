# Camera controls and stream settings (issue 14).
#
#   make bench-controls   set_camera_controls / get_camera_controls round trips at a WebSocket
#                         client (p50/p99/max, budget p99 <= 50 ms) and how long each batch of
#                         control ioctls kept the reactor, on the umockdev C920 of the live stack
#
# The QEMU test against vivid's real controls is part of tests/system (test_e2e.py).
# umockdev is in the Makefile's APT_PACKAGES; v4l-utils (v4l2-ctl) too.

BENCH_CONTROLS_ARGS ?=

.PHONY: bench-controls
bench-controls: venv
	$(PY) bench/controls.py $(BENCH_CONTROLS_ARGS)
bench: bench-controls
