# Camera discovery targets (included by the top-level Makefile).
#
#   make bench-discovery   uevent -> camera_status_update latency at a WebSocket client, on
#                          umockdev (>= 200 add/remove uevents; p50/p99/max): 8 cameras round
#                          robin with a raw-udev baseline; then issue 13's matrix (isolated and
#                          50-300 ms after the previous change, add and remove separately, each
#                          against the minimal pyudev + Autobahn broadcaster, with the ratio),
#                          new cameras and replugs; camsvc's CPU time per uevent; the reactor's
#                          syscalls from uevent to frame (strace)
#
# BENCH_DISCOVERY_ARGS passes options, e.g. BENCH_DISCOVERY_ARGS="-n 400".
# umockdev, gir1.2-umockdev-1.0 and python3-gi are in the Makefile's APT_PACKAGES.

BENCH_DISCOVERY_ARGS ?=
# bench/discovery_syscalls.py and bench/fsync_off_reactor.py attach strace.
APT_PACKAGES += strace

.PHONY: bench-discovery
bench-discovery: venv
	$(PY) bench/discovery_latency.py $(BENCH_DISCOVERY_ARGS)
	$(PY) bench/discovery_latency.py --matrix $(BENCH_DISCOVERY_ARGS)
	$(PY) bench/discovery_latency.py --matrix --replug $(BENCH_DISCOVERY_ARGS)
	$(PY) bench/discovery_cpu.py $(BENCH_DISCOVERY_ARGS)
	$(PY) bench/discovery_syscalls.py
	$(PY) bench/discovery_syscalls.py --replug
