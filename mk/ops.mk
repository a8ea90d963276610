# Operations: metrics, logging, systemd, shutdown, reload (included by the top-level Makefile).

# JSON-RPC ping throughput on one connection and on 50, plus the server's idle VmRSS;
# figures in docs/performance.md.
.PHONY: bench-ping
bench-ping: venv
	$(PY) bench/ping.py
