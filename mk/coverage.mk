# Coverage of `make test` (included by the top-level Makefile).
#
# test-unit runs pytest under coverage.py (.coveragerc): the test process and every Python
# child it starts (twistd, camsvc-cli, camsvc-admin, probes), lines and branches, combined
# into build/coverage/html/index.html; below the floor (`fail_under`) the run fails.
# coverage.py comes from the venv (setup.py test extras); no Debian package.
#
#   make test-unit COVERAGE=0   plain pytest, no report, no floor: quick local runs, and any
#                               stage that runs test-unit on a selection (PYTEST_ARGS=tests/...),
#                               which under coverage would fail the floor
#   make coverage-report        summary of the last run's data, missing lines per file

COVERAGE ?= 1
ifeq ($(COVERAGE),0)
PYTEST_RUN = $(PY) -m pytest
else
PYTEST_RUN = tools/pytest-coverage $(PY)
endif

.PHONY: coverage-report
coverage-report: venv
	$(PY) -m coverage report --show-missing
