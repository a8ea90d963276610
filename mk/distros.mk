# The unit suite on other distributions' library versions (included by the top-level Makefile).
#
#   make test-jammy-libs    Ubuntu 22.04: pyenv's CPython 3.10, jammy's Twisted 22.1, Autobahn 21.11, ...
#   make test-noble-libs    Ubuntu 24.04: CPython 3.12, noble's Twisted 24.3, Autobahn 23.1, ...
#   make test-trixie-libs   Debian 13:    CPython 3.13, trixie's Twisted 24.11, Autobahn 23.1, ...
#   make test-distro-libs   all three
#   make test-trixie        the .deb in a Debian 13 QEMU guest under systemd: apt install, ready,
#                           ping with a camsvc-admin token, systemctl reload, upgrade, purge
#
# The versions are pinned in one place, tests/distros/<distro>.txt (how they
# were checked: tests/distros/README.md).  Each stage makes .venv-<distro> with
# the machine's pyenv interpreter of that minor version, installs the pins
# from PyPI (plus the test tools, which pip chooses to fit them) and camsvc
# itself without dependencies, checks that the venv holds exactly the pins
# (tests/distros/check_pins.py), then runs DISTRO_TESTS.  Debian 12 is
# mk/debian.mk's test-deb12-libs (Debian's own packages, the whole suite).

PYENV_ROOT ?= $(or $(wildcard /root/.pyenv),$(HOME)/.pyenv)
# pyenv python of a minor version: the newest installed 3.N.x.
pyenv_python = $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python3)))

# The tests that exercise the third-party libraries' APIs: Twisted's reactor (its timer lists: clockstep),
# web and TLS, Autobahn's WebSocket server, treq against the MediaMTX stand-in,
# pyudev (and umockdev), PyYAML, PyJWT, prometheus-client, service-identity, paho-mqtt.
# Browser, fuzzing, layering and packaging checks do not depend on them.
DISTRO_TESTS ?= tests/test_ws.py tests/test_ws_flow.py tests/test_rpc.py tests/test_auth.py \
	tests/test_api_auth.py tests/test_httpauth.py tests/test_security_ws.py tests/test_tls.py \
	tests/test_config.py tests/test_reload.py tests/test_metrics.py tests/test_metrics_http.py \
	tests/test_metrics_mediamtx.py tests/test_mediamtx_integration.py tests/test_mediamtx_reconcile.py \
	tests/test_discovery.py tests/test_discovery_umockdev.py tests/test_http_files.py \
	tests/test_lifecycle.py tests/test_shutdown_recording.py tests/test_admin.py tests/test_client.py \
	tests/test_smoke.py tests/test_python_support.py tests/test_mqtt_bridge.py tests/test_mqtt_broker.py \
	tests/test_mqtt_payloads.py tests/test_http_limits.py tests/test_unauthenticated.py tests/test_ws_frames.py \
	tests/test_clockstep.py
# The umockdev event storm is left to the main run: it measures umockdev's
# preload (whose fd table overflows under heavy load), not a library version.
DISTRO_PYTEST_ARGS ?= -q -p no:cacheprovider \
	--deselect tests/test_discovery_umockdev.py::test_event_storm_ends_in_the_right_state
# How many of the three run at once (1: one after another).
DISTRO_JOBS ?= 3

TEST_STAGES += test-distro-libs test-trixie

.PHONY: test-distro-libs test-jammy-libs test-noble-libs test-trixie-libs distro-libs-clean
# The three side by side: the selection spends most of its wall time waiting
# (timeouts, child processes, sockets), not computing, so in parallel the stage
# takes about as long as the slowest one.  Each keeps its own output together.
test-distro-libs:
	@$(MAKE) --no-print-directory -j$(DISTRO_JOBS) --output-sync=target test-jammy-libs test-noble-libs test-trixie-libs

test-jammy-libs:
	@$(MAKE) --no-print-directory distro-libs DISTRO=ubuntu-22.04 DISTRO_PY=3.10
test-noble-libs:
	@$(MAKE) --no-print-directory distro-libs DISTRO=ubuntu-24.04 DISTRO_PY=3.12
test-trixie-libs:
	@$(MAKE) --no-print-directory distro-libs DISTRO=debian-13 DISTRO_PY=3.13

# One distribution: DISTRO=<pin file name>, DISTRO_PY=<minor version>.
# PIP_CONSTRAINT (not -c) so that the pins also bind the isolated build
# environments of the few sdists (PyYAML 5.4.1 needs Cython < 3).
.PHONY: distro-libs
distro-libs:
	@py='$(call pyenv_python,$(DISTRO_PY))'; pins=tests/distros/$(DISTRO).txt; venv=.venv-$(DISTRO); \
	test -n "$$py" || { echo "$(DISTRO): no CPython $(DISTRO_PY) under $(PYENV_ROOT)/versions (pyenv install $(DISTRO_PY))" >&2; exit 1; }; \
	stamp=$$venv/.pins-$$(cat $$pins setup.py | sha256sum | cut -c1-12); \
	if [ ! -e $$stamp ]; then \
	  echo "$(DISTRO): making $$venv with $$py"; \
	  rm -rf $$venv && $$py -m venv $$venv && grep -v 'build-only' $$pins > $$venv/requirements.txt && \
	  { PIP_CONSTRAINT=$(CURDIR)/$$pins $$venv/bin/python -m pip install -q --disable-pip-version-check \
	      -r $$venv/requirements.txt pytest pytest-twisted hypothesis jsonschema 'websockets>=12' wheel > $$venv/pip.log 2>&1 && \
	    PIP_CONSTRAINT= $$venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
	      -e . >> $$venv/pip.log 2>&1; } || { grep -v '^WARNING: Location' $$venv/pip.log | tail -30; exit 1; }; \
	  touch $$stamp; \
	fi; \
	$$venv/bin/python tests/distros/check_pins.py $$pins && \
	$$venv/bin/python -m pytest $(DISTRO_PYTEST_ARGS) $(DISTRO_TESTS) $(PYTEST_ARGS)

distro-libs-clean:
	rm -rf .venv-ubuntu-22.04 .venv-ubuntu-24.04 .venv-debian-13

# After test-system's image: it boots that image's kernel and initramfs.
.PHONY: test-trixie
test-trixie: system-image
	$(DEB_ENV) tests/system/test_trixie.sh $(DEB_FILE)
