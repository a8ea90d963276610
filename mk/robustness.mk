# Issue 15: floods, HTTP limits, listings, faults (figures in docs/performance.md and docs/faults.md).
.PHONY: bench-listing
bench-listing: venv
	$(PY) bench/listing.py
bench: bench-listing

.PHONY: bench-flood
bench-flood: venv
	$(PY) bench/unauth_flood.py
bench: bench-flood

# The fault-injection suite (faults/, docs/faults.md): MediaMTX SIGKILLed and restarted 100
# times, its configuration reloaded 20 times; camsvc SIGKILLed during recordings 10 times; the
# wall clock stepped by +1 h and -1 h (libfaketime: Debian's faketime); 1,000 clients, 10 slow
# readers and the unauthenticated flood at once.  Counts: FAULT_* variables (docs/faults.md).
APT_PACKAGES += faketime
.PHONY: test-faults
test-faults: venv
	$(PY) -m pytest -q -s faults
TEST_STAGES += test-faults
