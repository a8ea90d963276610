# Throughput and memory on camsvc's own stack (issue 18; included by the top-level Makefile).
# Figures and how to read them: docs/performance.md.

# Resident memory with 1,000 idle authenticated WebSocket clients (websockets library).
.PHONY: bench-idle-clients
bench-idle-clients: venv
	$(PY) bench/idle_clients.py
bench: bench-idle-clients

# CPU profile of camsvc under the websockets client's ping load (cProfile through twistd
# --profile); prints the 30 most expensive functions.
.PHONY: bench-profile
bench-profile: venv
	$(PY) bench/ping.py --profile
