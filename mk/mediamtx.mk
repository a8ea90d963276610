# MediaMTX integration: benchmark of the reconcile time after a MediaMTX restart.
.PHONY: bench-mediamtx
bench-mediamtx: venv
	$(PY) bench/mediamtx_reconcile.py --runs 20
	$(PY) bench/mediamtx_reconcile.py --runs 20 --process
