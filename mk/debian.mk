# Debian package and system-test targets (included by the top-level Makefile).
#
#   make deb           build dist/deb/camsvc_<version>_all.deb from a copy of the tree
#   make test-deb      deb + lintian + systemd-analyze + install it here + twistd3 smoke test
#   make test-system   deb + Debian 12 QEMU guest with the vivid camera + e2e pytest
#   make system-image  only build (or reuse) the guest image
#   make bench-guest   the guest's latency figures (camsvc vs the minimal broadcaster)
#   make test-deb12-libs  the unit suite on Debian 12's own libraries (Twisted 22.4, Autobahn
#                      22.7, treq 22.2, pyudev 0.24, ...), i.e. what the .deb runs on
#
# Run on Debian 12 as root (CI) or as a user with sudo: the targets install their own
# apt dependencies, and the steps that need root (apt, dpkg -i, debootstrap, chroot)
# go through tools/as-root (sudo when not root; `make test-as-user` proves it).
# Builds use Debian's interpreter only: pyenv/venv shims on PATH must not leak
# into pybuild, twistd3 or the maintainer scripts.

DEB_OUT        ?= dist/deb
DEB_PATH       := PATH=/usr/sbin:/usr/bin:/sbin:/bin
DEB_ENV        := env -u PYTHONPATH -u VIRTUAL_ENV -u PYTHONHOME $(DEB_PATH) LC_ALL=C.UTF-8
DEB_VERSION     = $(shell dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null || sed -n '1s/.*(\(.*\)).*/\1/p' debian/changelog)
DEB_FILE        = $(DEB_OUT)/camsvc_$(DEB_VERSION)_all.deb
SYSTEM_PYTEST  ?= $(or $(wildcard .venv/bin/pytest),pytest)

TEST_STAGES += test-deb12-libs test-deb test-system

.PHONY: deb deb-build-deps test-deb system-image test-system bench-guest deb-clean test-deb12-libs

deb-build-deps:
	@$(DEB_ENV) sh tests/system/apt_deps.sh build

# Build from a copy of the tracked and untracked-but-not-ignored files, so the
# working tree gets no build/, .pybuild/, debian/camsvc/ or egg-info litter.
deb: deb-build-deps
	@set -e; t0=$$(date +%s); tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir "$$tmp/src"; \
	git ls-files -z --cached --others --exclude-standard | \
	  xargs -0 sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' _ | \
	  tar --null -T - -cf - | tar -xf - -C "$$tmp/src"; \
	(cd "$$tmp/src" && $(DEB_ENV) dpkg-buildpackage -b -us -uc > "$$tmp/build.log" 2>&1) || \
	  { tail -60 "$$tmp/build.log"; exit 1; }; \
	mkdir -p $(DEB_OUT); rm -f $(DEB_OUT)/camsvc_*; \
	cp "$$tmp"/camsvc_*.deb "$$tmp"/camsvc_*.buildinfo "$$tmp"/camsvc_*.changes "$$tmp/build.log" $(DEB_OUT)/; \
	echo "built $$(ls $(DEB_OUT)/*.deb) ($$(du -k $(DEB_OUT)/*.deb | cut -f1) KiB) in $$(( $$(date +%s) - t0 )) s"

test-deb: deb
	@$(DEB_ENV) sh tests/system/apt_deps.sh test-deb
	$(DEB_ENV) lintian --fail-on error,warning $(DEB_FILE)
	$(DEB_ENV) sh tests/system/test_deb.sh $(DEB_FILE)

system-image: deb
	$(DEB_ENV) tests/system/build_image.sh $(DEB_FILE)

# The e2e test runs in the project's pytest (websockets from the test extras);
# CAMSVC_SYSTEM_ENV tells its fixture which kernel/initrd/image to boot.
test-system: system-image
	CAMSVC_SYSTEM_ENV=$(CURDIR)/tests/system/cache/current.env \
	  $(SYSTEM_PYTEST) -m system -p no:cacheprovider -v tests/system

# udev event -> notification in the guest, camsvc vs bench/broadcaster.py in one run
# (tests/system/README.md, "The latency run"); BENCH_GUEST_ARGS e.g. --isolated 30 --rapid 30.
bench-guest: system-image
	$(or $(wildcard .venv/bin/python),python3) tests/system/vm.py --bench $(BENCH_GUEST_ARGS)

# Debian's python3 with --system-site-packages: every runtime library and
# pytest/pytest-twisted/hypothesis/jsonschema come from Debian packages; only
# websockets (a test client; Debian 12's 10.4 lacks websockets.sync) and the
# editable camsvc itself are installed into the venv, both without dependencies.
DEB12_VENV := .venv-deb12
test-deb12-libs:
	@$(DEB_ENV) sh tests/system/apt_deps.sh deb12-libs
	@test -x $(DEB12_VENV)/bin/python || $(DEB_ENV) /usr/bin/python3 -m venv --system-site-packages $(DEB12_VENV)
	@$(DEB_ENV) $(DEB12_VENV)/bin/python -m pip install -q --no-deps --no-build-isolation "websockets>=12" -e . 2>&1 | grep -v '^WARNING: Location' || true
	$(DEB_ENV) $(DEB12_VENV)/bin/python tests/system/check_deb12_libs.py
	$(DEB_ENV) $(DEB12_VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

deb-clean:
	rm -rf $(DEB_OUT) $(DEB12_VENV)
