# Camera discovery targets (included by the top-level Makefile).
#
#   make bench-discovery   uevent -> camera_status_update latency at a WebSocket client, on
#                          umockdev (>= 200 add/remove uevents; p50/p99/max), new cameras and
#                          replugs, replugs 50-300 ms after the previous change (--gaps), with a
#                          raw-udev baseline; then camsvc's CPU time per uevent
#
# BENCH_DISCOVERY_ARGS passes options, e.g. BENCH_DISCOVERY_ARGS="-n 400".
# umockdev, gir1.2-umockdev-1.0 and python3-gi are in the Makefile's APT_PACKAGES.

BENCH_DISCOVERY_ARGS ?=

.PHONY: bench-discovery
bench-discovery: venv
	$(PY) bench/discovery_latency.py $(BENCH_DISCOVERY_ARGS)
	$(PY) bench/discovery_latency.py --replug --no-baseline $(BENCH_DISCOVERY_ARGS)
	$(PY) bench/discovery_latency.py --replug --no-baseline --gaps 0.05:0.3 $(BENCH_DISCOVERY_ARGS)
	$(PY) bench/discovery_cpu.py $(BENCH_DISCOVERY_ARGS)
