# Issue 15: floods, HTTP limits, listings, faults (figures in docs/performance.md and docs/faults.md).
.PHONY: bench-listing
bench-listing: venv
	$(PY) bench/listing.py
bench: bench-listing

.PHONY: bench-flood
bench-flood: venv
	$(PY) bench/unauth_flood.py
bench: bench-flood
