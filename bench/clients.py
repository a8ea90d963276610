"""Client-side figures: the dashboard in Chromium and camsvc-cli, against a live camsvc.

camsvc runs with umockdev cameras and the MediaMTX stand-in
(tests/support/livestack.py).  Measured:

* ``page``: navigation start -> every camera card on screen (Chromium's
  ``performance.now()``, read by a MutationObserver installed before the page's
  own scripts run), over ``--loads`` fresh loads;
* ``plug`` / ``unplug``: the umockdev uevent -> the card appears (or greys out)
  in the page, wall clock on this host (the bench records ``time.time()`` before
  the uevent, the observer ``Date.now()`` when the DOM changes), over ``--cycles``
  plug/unplug cycles;
* ``cli``: wall time of ``camsvc-cli ping`` and ``camsvc-cli list`` as a user
  runs them (new process each: Python start-up, imports, connect, call), over
  ``--runs`` runs, with the venv's and (if present) Debian's python3.

    /work/main/.venv/bin/python bench/clients.py [--cycles 20] [--loads 10] [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import start_browser  # noqa: E402
from tests.support.livestack import CAMERAS, LiveStack  # noqa: E402

OBSERVER = """
window.__marks = {};
new MutationObserver(() => {
  const grid = document.getElementById('camera-grid');
  if (!grid) return;
  const cards = [...grid.querySelectorAll('[data-camera]')];
  const now = performance.now(), wall = Date.now();
  const live = cards.filter(c => !c.classList.contains('offline')).map(c => c.querySelector('h3').textContent);
  if (live.length >= 2 && window.__marks.cards === undefined) window.__marks.cards = now;
  for (const name of live) if (window.__marks['on:' + name] === undefined) window.__marks['on:' + name] = wall;
  for (const c of cards) {
    const name = c.querySelector('h3').textContent;
    if (c.classList.contains('offline') && window.__marks['off:' + name] === undefined) window.__marks['off:' + name] = wall;
  }
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ['class']});
"""


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return f"p50 {p50:7.1f} ms  p90 {p90:7.1f} ms  max {ordered[-1]:7.1f} ms  (n={len(ordered)})"


def wait_mark(driver, key: str, timeout: float = 20.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script("return window.__marks && window.__marks[arguments[0]]", key)
        if value is not None:
            return float(value)
        time.sleep(0.01)
    raise TimeoutError(key)


def bench_page(stack: LiveStack, loads: int) -> list[float]:
    times = []
    browser = start_browser(1440, 900)
    try:
        browser.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": OBSERVER})
        for _ in range(loads):
            browser.driver.get(stack.http + "/")
            times.append(wait_mark(browser.driver, "cards"))
    finally:
        browser.quit()
    return times


def bench_hotplug(stack: LiveStack, cycles: int) -> tuple[list[float], list[float]]:
    card = CAMERAS[2]["card"]
    plug, unplug = [], []
    browser = start_browser(1440, 900)
    driver = browser.driver
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": OBSERVER})
        driver.get(stack.http + "/")
        wait_mark(driver, "cards")
        for _ in range(cycles):
            driver.execute_script("delete window.__marks['on:' + arguments[0]]", card)
            t0 = time.time() * 1000
            stack.plug(2, wait=False)
            plug.append(wait_mark(driver, f"on:{card}") - t0)
            time.sleep(0.5)  # beyond discovery's debounce, so the unplug is its own event
            driver.execute_script("delete window.__marks['off:' + arguments[0]]", card)
            t0 = time.time() * 1000
            stack.unplug(CAMERAS[2]["name"], wait=False)
            unplug.append(wait_mark(driver, f"off:{card}") - t0)
            time.sleep(0.5)
    finally:
        browser.quit()
    return plug, unplug


def bench_cli(stack: LiveStack, runs: int, python: str) -> dict[str, list[float]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out: dict[str, list[float]] = {}
    for command in ("ping", "list"):
        times = []
        for _ in range(runs):
            t0 = time.monotonic()
            done = subprocess.run(
                [python, "-m", "camsvc.tools.cli", "--url", stack.url, command],
                capture_output=True,
                env=env,
                timeout=60,
            )
            times.append((time.monotonic() - t0) * 1000)
            if done.returncode != 0:
                raise RuntimeError(done.stderr.decode())
        out[command] = times
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="camsvc-bench-clients-") as tmp:
        stack = LiveStack(Path(tmp)).start()
        try:
            stack.wait_cameras(lambda cams: sum(c["status"] == "CONNECTED" for c in cams) >= 2)
            print(f"dashboard load -> cameras shown : {summary(bench_page(stack, args.loads))}")
            plug, unplug = bench_hotplug(stack, args.cycles)
            print(f"plug uevent -> card shown       : {summary(plug)}")
            print(f"unplug uevent -> card greyed    : {summary(unplug)}")
            pythons = [("venv", sys.executable)]
            if os.access("/usr/bin/python3", os.X_OK):
                pythons.append(("debian", "/usr/bin/python3"))
            for label, python in pythons:
                for command, times in bench_cli(stack, args.runs, python).items():
                    print(f"camsvc-cli {command:<4} ({label:<6})    : {summary(times)}")
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
