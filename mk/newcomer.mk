# A newcomer's machine (issue 20): `make run` with MediaMTX, and `make test` as it
# runs on a normally booted Debian/Ubuntu box by a normal user with sudo.
#
#   make test-qlen512   the tests sensitive to net.unix.max_dgram_qlen with the value
#                       systemd sets at boot (512), in a network namespace of their own
#                       (tools/netns-qlen; the host's sysctl is untouched)
#   make test-as-user   run as root (CI): a part of `make test` from a copy of the tree
#                       as a throwaway non-root user (camsvc-ci, passwordless sudo,
#                       deleted afterwards): the venv, a selection of the unit suite,
#                       test-qlen512 and test-deb, whose namespace, apt and dpkg steps
#                       must then go through sudo (tools/test-as-user).  Run by a user who is not root it
#                       does nothing: that whole `make test` is the proof.
#
# test-qlen512 needs root only to create the namespace: sudo when not root (tools/as-root).

APT_PACKAGES += sudo iproute2 util-linux passwd
TEST_STAGES += test-qlen512 test-as-user

QLEN_TESTS := tests/test_umockdev_bed.py tests/test_discovery_umockdev.py
# The unit tests run as the throwaway user: the umockdev bed, `make run` and the
# README's quick tour, file permissions, configuration.
AS_USER_TESTS ?= tests/test_devrun.py tests/test_quicktour.py tests/test_tools_root.py \
	tests/test_auth.py tests/test_secrets.py tests/test_config.py
# test-qlen512 (its namespace) and test-deb (apt, dpkg) need root: sudo, as the user.
AS_USER_TARGETS ?= venv test-unit test-qlen512 test-deb
# COVERAGE=0: a selection of the suite, measured it would fail the floor (mk/coverage.mk).

.PHONY: test-qlen512 test-as-user
test-qlen512: venv
	@host=$$(cat /proc/sys/net/unix/max_dgram_qlen); \
	inside=$$(tools/netns-qlen 512 cat /proc/sys/net/unix/max_dgram_qlen); \
	[ "$$inside" = 512 ] && [ "$$(cat /proc/sys/net/unix/max_dgram_qlen)" = "$$host" ] || \
	  { echo "test-qlen512: net.unix.max_dgram_qlen is $$inside in the namespace (want 512), host $$host"; exit 1; }; \
	echo "test-qlen512: net.unix.max_dgram_qlen 512 in the namespace, $$host on the host"
	tools/netns-qlen 512 $(PY) -m pytest -q -p no:cacheprovider $(QLEN_TESTS)

test-as-user: deps
	tools/test-as-user $(AS_USER_TARGETS) COVERAGE=0 PYTEST_ARGS="-q -p no:cacheprovider $(AS_USER_TESTS)"
