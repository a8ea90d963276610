"""Headless Chromium under Selenium for browser tests (test support).

Owns starting Debian's ``chromium`` through Debian's ``chromium-driver`` with
Selenium (from PyPI) and nothing downloaded: the driver path is given
explicitly, so Selenium Manager never runs.  :func:`browser_available` says
why a browser test must skip; :func:`start_browser` returns a WebDriver with
a fresh profile; :func:`console_errors` reads the page's console.

Flags: ``--headless --no-sandbox`` (root in a container) ``--disable-gpu``,
``--disable-quic --no-first-run --disable-background-networking
--disable-component-update --disable-sync`` (no traffic to Google), and a
fresh ``--user-data-dir`` per browser.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
)


def browser_available() -> tuple[bool, str]:
    """``(True, "")`` when Chromium, its driver and Selenium are installed, else ``(False, reason)``."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return False, f"{path} not found (apt-get install {package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False, "selenium is not installed (pip install selenium)"
    return True, ""


class Browser:
    """A WebDriver plus its temporary profile; ``quit()`` removes both."""

    def __init__(self, driver: Any, profile: str) -> None:
        self.driver = driver
        self.profile = profile

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Any:
        return self.driver

    def __exit__(self, *exc: Any) -> None:
        self.quit()


def start_browser(
    width: int = 1440, height: int = 1000, *, scale: float = 1.0, dark: bool = False, flags: tuple = ()
) -> Browser:
    """A headless Chromium with a window of ``width`` x ``height`` CSS pixels; ``flags`` are added."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="camsvc-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    for flag in flags:
        options.add_argument(flag)
    if scale != 1.0:
        options.add_argument(f"--force-device-scale-factor={scale}")
    if dark:
        options.add_argument("--force-dark-mode")
        options.add_argument("--blink-settings=preferredColorScheme=0")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=os.devnull)
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except Exception:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    driver.set_window_size(width, height)
    return Browser(driver, profile)


def console_errors(driver: Any) -> list[str]:
    """Console messages at SEVERE level since the last call (JS errors, CSP violations, failed loads)."""
    try:
        entries = driver.get_log("browser")
    except Exception:
        return []
    return [e.get("message", "") for e in entries if e.get("level") == "SEVERE"]


def set_viewport(driver: Any, width: int, height: int, *, scale: float = 1.0, mobile: bool = False) -> None:
    """Emulate an exact viewport (CSS pixels), e.g. a phone with ``mobile=True``."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile},
    )


def screenshot(driver: Any, path: str, *, full_page: bool = False) -> str:
    """Save a PNG of the viewport (or of the whole page) to ``path``."""
    import base64

    params: dict = {"format": "png", "captureBeyondViewport": full_page}
    if full_page:
        metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    data = driver.execute_cdp_cmd("Page.captureScreenshot", params)["data"]
    with open(path, "wb") as fh:
        fh.write(base64.b64decode(data))
    return path
