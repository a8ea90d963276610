"""Fixtures of the end-to-end system test (a QEMU guest with a real kernel camera).

These tests only run from `make test-system`, which builds the .deb and the
guest image and sets CAMSVC_SYSTEM_ENV to the artefacts' description
(tests/system/cache/current.env).  In the normal pytest run they are skipped.
"""

import importlib.util
import json
import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# Loaded by path: tests/system is not a package, and the name must not clash.
_spec = importlib.util.spec_from_file_location("camsvc_system_vm", os.path.join(HERE, "vm.py"))
_vm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_vm)
sys.modules["camsvc_system_vm"] = _vm  # test_e2e imports latency_figures from it
GuestVM = _vm.GuestVM
RESULTS = {}
# cache/ holds the guest's root filesystem (a whole Debian tree): never collect it.
collect_ignore = ["cache", "guest"]


def pytest_configure(config):
    config.addinivalue_line("markers", "system: end-to-end test in a QEMU guest (make test-system)")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("CAMSVC_SYSTEM_ENV"):
        return
    skip = pytest.mark.skip(reason="system test: run it with `make test-system`")
    for item in items:
        if "system" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def results():
    """Figures the tests measure; written to cache/results.json and printed."""
    return RESULTS


@pytest.fixture(scope="session")
def guest(results):
    env_file = os.environ["CAMSVC_SYSTEM_ENV"]
    log = os.path.join(os.path.dirname(env_file), "serial.log")
    vm = GuestVM(env_file, log)
    t0 = time.monotonic()
    vm.start()
    try:
        vm.wait_ready()
        results["boot_to_control_s"] = round(vm.timings["control"], 1)
        results["boot_to_api_s"] = round(vm.timings["api"], 1)
        boot = vm.control("GET", "/boot", timeout=30)
        results["guest_boot"] = boot["time"]["stdout"].strip().splitlines()[0:1]
        results["guest_boot_slowest_units"] = boot["blame"]["stdout"].strip().splitlines()[:5]
        yield vm
    finally:
        try:
            if vm.alive():
                j = vm.control("GET", "/journal?unit=camsvc&lines=400", timeout=20)
                with open(os.path.join(os.path.dirname(env_file), "camsvc-journal.log"), "w") as f:
                    f.write(j.get("stdout", ""))
        except Exception:  # noqa: BLE001 - diagnostics only; the VM goes away anyway
            pass
        vm.stop()
        results["guest_lifetime_s"] = round(time.monotonic() - t0, 1)


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    path = os.path.join(HERE, "cache", "results.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(RESULTS, f, indent=2, sort_keys=True)
    terminalreporter.section("camsvc system test figures")
    for k in sorted(RESULTS):
        terminalreporter.write_line(f"{k}: {RESULTS[k]}")
    terminalreporter.write_line(f"(also in {path}; serial console in cache/serial.log)")
