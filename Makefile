# camsvc developer commands.  `make run` and `make test` each do their own
# set-up on a fresh Debian 12 / Ubuntu 22.04+ machine (Debian packages via
# sudo when not root, then a virtualenv in .venv) and are idempotent.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

# Debian packages the service and the tests need.  Files in mk/ add more.
APT_PACKAGES := python3 python3-venv python3-dev gcc ffmpeg v4l-utils \
	umockdev gir1.2-umockdev-1.0 python3-gi libudev1 curl
# Extra stages of `make test`, run after pytest (appended to by mk/*.mk).
TEST_STAGES :=

-include mk/*.mk

.PHONY: all run test test-unit deps venv lint format clean
all: test

deps:
	@tools/ensure-apt $(APT_PACKAGES)

$(VENV)/.installed: setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test,dev]'
	@touch $@

venv: deps $(VENV)/.installed

# camsvc with MediaMTX beside it (installed, or the pinned release fetched into .cache/mediamtx/);
# Ctrl-C stops both.  tools/devrun.py says what it does.
run: venv
	$(PY) tools/devrun.py --config conf/dev.yaml

# pytest, under coverage with its floor (mk/coverage.mk; COVERAGE=0 runs it bare).
PYTEST_RUN ?= $(PY) -m pytest
test-unit: venv
	$(PYTEST_RUN) $(PYTEST_ARGS)

test: test-unit $(TEST_STAGES)

lint: venv
	$(VENV)/bin/ruff check camsvc tests faults twisted bench examples tools
	$(VENV)/bin/ruff format --check camsvc tests faults twisted bench examples tools

format: venv
	$(VENV)/bin/ruff format camsvc tests faults twisted bench examples tools
	$(VENV)/bin/ruff check --fix camsvc tests faults twisted bench examples tools

clean:
	rm -rf build dist *.egg-info .pytest_cache run twisted/plugins/dropin.cache

.PHONY: openrpc
openrpc: venv
	$(PY) -m camsvc.apidoc > docs/openrpc.json

.PHONY: bench bench-startup bench-fanout bench-rss
# Every benchmark; figures go to docs/performance.md.  Run on a quiet machine.
bench: bench-rss bench-startup bench-ping bench-fanout bench-discovery bench-mediamtx bench-media bench-auth bench-clients

bench-rss: venv
	$(PY) bench/rss.py
	@if python3 -c 'import twisted, autobahn, treq' 2>/dev/null; then /usr/bin/python3 bench/rss.py --python /usr/bin/python3; fi

bench-startup: venv
	$(PY) bench/startup.py
	@if /usr/bin/python3 -c 'import twisted, autobahn, treq' 2>/dev/null; then /usr/bin/python3 bench/startup.py --python /usr/bin/python3; fi

bench-fanout: venv
	$(PY) bench/fanout.py
