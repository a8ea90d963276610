"""The dashboard in real headless Chromium against a live camsvc.

camsvc runs with umockdev cameras and the MediaMTX stand-in
(:class:`~tests.support.livestack.LiveStack`); Debian's Chromium is driven
by Selenium through Debian's chromedriver (nothing is downloaded).  The tests
run in file order on one page, as a user would: the page connects and shows
the system's health, two cameras appear, a third is plugged in and appears
without a reload, one is unplugged and greys out, a snapshot is taken and
shown, a recording is started and stopped and lands in the list, a file is
deleted, and the page is checked on a phone-sized screen; then MediaMTX is
stopped.  Separately: sign-in, roles and session expiry with authentication
on, and the page over https://.

Screenshots go to ``artifacts/screenshots/`` (git-ignored).  With
``CAMSVC_UPDATE_SCREENSHOTS=1`` (``make screenshots``) the README's images
in ``docs/images/`` are refreshed from them.

A step whose API method is not on this camsvc yet skips, naming the method.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import urllib.request
from pathlib import Path

import jwt
import pytest

from tests.support.browser import browser_available, console_errors, screenshot, set_viewport, start_browser
from tests.support.livestack import CAMERAS, LiveStack, admin, stack_available
from tests.support.server import ROOT
from tests.support.wsclient import RpcClient

ARTIFACTS = ROOT / "artifacts" / "screenshots"
DOCS_IMAGES = ROOT / "docs" / "images"
WIDTH, HEIGHT = 1440, 900

_ok, _why = browser_available()
pytestmark = pytest.mark.skipif(not _ok, reason=_why)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    ok, reason = stack_available()
    if not ok:
        pytest.skip(reason)
    live = LiveStack(tmp_path_factory.mktemp("dashboard")).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def driver(stack):
    browser = start_browser(WIDTH, HEIGHT)
    set_viewport(browser.driver, WIDTH, HEIGHT)
    browser.driver.get(stack.http + "/")
    yield browser.driver
    browser.quit()


def need(stack: LiveStack, *methods: str) -> None:
    reason = stack.missing(*methods)
    if reason:
        pytest.skip(reason)


def wait(driver, condition, timeout: float = 30.0, what: str = "condition"):
    """Poll ``condition(driver)`` until it is truthy; return its value.

    Cards are redrawn when their camera changes, so an element found a moment ago
    may be gone: such a poll just counts as "not yet".
    """
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition(driver)
        except (NoSuchElementException, StaleElementReferenceException):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; console: {console_errors(driver)}")
        time.sleep(0.1)


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def shot(driver, name: str, *, docs: bool = False, full: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    screenshot(driver, str(path), full_page=full)
    assert path.stat().st_size > 10_000
    if docs and os.environ.get("CAMSVC_UPDATE_SCREENSHOTS"):
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / path.name)
    return path


def cards(driver) -> list[dict]:
    return js(
        driver,
        """return [...document.querySelectorAll('#camera-grid [data-camera]')].map(c => ({
             id: c.dataset.camera, status: c.dataset.status, offline: c.classList.contains('offline'),
             name: c.querySelector('h3').textContent}));""",
    )


def click(driver, element) -> None:
    """Click like a user, after dismissing the notices in the corner (they may cover the side panel)."""
    driver.execute_script("document.getElementById('toasts').replaceChildren();")
    element.click()


def card_button(driver, camera_id: str, action: str):
    return driver.find_element("css selector", f'[data-camera="{camera_id}"] [data-action="{action}"]')


def click_card(driver, camera_id: str, action: str) -> None:
    """Click a card's button (see :func:`click_retrying`)."""
    click_retrying(driver, f'[data-camera="{camera_id}"] [data-action="{action}"]')


def click_retrying(driver, selector: str, timeout: float = 30.0) -> None:
    """Click the element *selector* names once it is there (a card shows its capability table
    once its camera is probed: later on a loaded machine); one redrawn between finding and
    clicking (stale) is found again.

    A missing element or a stale reference fails before any input event is sent, so a retry
    never clicks twice.
    """
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            click(driver, driver.find_element("css selector", selector))
            return
        except (NoSuchElementException, StaleElementReferenceException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# -- the page ---------------------------------------------------------------------------------------


def test_page_connects_and_shows_health(driver, stack):
    wait(driver, lambda d: d.find_element("id", "conn-pill").text == "Live", what="the Live pill")
    wait(driver, lambda d: d.find_element("id", "health-pill").is_displayed(), what="the health pill")
    checks = wait(
        driver,
        lambda d: js(d, "return [...document.querySelectorAll('#checks [data-check]')].map(li => li.dataset.check)"),
        what="the readiness checks",
    )
    assert "listening" in checks
    assert "camsvc 0.1.0" in driver.find_element("id", "server-version").text
    if stack.missing("get_camera_list"):
        notice = driver.find_element("id", "cameras-notice").text
        assert "get_camera_list" in notice
    assert console_errors(driver) == []
    # Marks this page load: later steps prove that nothing reloaded it.
    js(driver, "window.__sameLoad = true;")
    shot(driver, "dashboard-connected")


def test_cameras_appear_and_follow_hotplug(driver, stack):
    need(stack, "get_camera_list")
    names = {c["card"] for c in CAMERAS[:2]}
    wait(driver, lambda d: {c["name"] for c in cards(d) if not c["offline"]} >= names, what="the two cameras")
    assert len(cards(driver)) == 2
    stack.plug(2)
    brio = wait(
        driver,
        lambda d: next((c for c in cards(d) if c["name"] == CAMERAS[2]["card"] and not c["offline"]), None),
        what="the plugged camera",
    )
    assert js(driver, "return window.__sameLoad === true"), "the page was reloaded"
    stack.unplug(CAMERAS[2]["name"])
    gone = wait(
        driver,
        lambda d: next((c for c in cards(d) if c["id"] == brio["id"] and c["offline"]), None),
        what="the unplugged camera to grey out",
    )
    assert gone["status"] == "DISCONNECTED"
    if not stack.missing("take_snapshot"):
        assert not card_button(driver, brio["id"], "snapshot").is_enabled()
    assert js(driver, "return window.__sameLoad === true")
    assert console_errors(driver) == []
    shot(driver, "dashboard-hotplug")
    # The README's picture, unless the recording step below makes a fuller one.
    shot(driver, "dashboard", docs=True)


def test_stream_links_and_capabilities(driver, stack):
    need(stack, "get_camera_list", "get_camera_status")
    camera_id = wait(driver, lambda d: first_connected(d), what="a connected camera")
    with RpcClient(stack.url) as client:
        streams = client.call("get_camera_status", {"device": camera_id})["streams"]
    card = f'[data-camera="{camera_id}"]'
    # The card is re-rendered whenever a notification arrives, so its parts are read in one
    # script call (element handles taken earlier may be stale by the next line).
    links = wait(
        driver,
        lambda d: js(
            d,
            """const c = document.querySelector(arguments[0]); if (!c) return null;
               const w = c.querySelector('[data-action="webrtc"]'), h = c.querySelector('[data-action="hls"]');
               return {rtsp: c.querySelector('input').value, webrtc: w.href, target: w.target, hls: h.href};""",
            card,
        ),
        what="the card's stream links",
    )
    assert links["rtsp"] == streams["rtsp"]
    # MediaMTX's own player pages, in a new tab.
    assert links["webrtc"] == streams["webrtc"] and links["target"] == "_blank"
    assert links["hls"] == streams["hls"].removesuffix("index.m3u8")
    click_retrying(driver, f'{card} [data-action="copy-rtsp"]')
    wait(
        driver,
        lambda d: d.find_element("css selector", f'{card} [data-action="copy-rtsp"]').text == "Copied",
        30,
        "Copied",
    )
    # The capability table lists every mode the camera reported.
    with RpcClient(stack.url) as client:
        caps = wait(
            driver,
            lambda d: (c := client.call("get_camera_capabilities", {"device": camera_id}))["formats"] and c,
            what="the camera's probed capabilities",
        )
    expected = sum(len(f["sizes"]) or 1 for f in caps["formats"])
    click_retrying(driver, f"{card} details.caps summary")
    first_cells = wait(
        driver,
        lambda d: (
            (
                cells := js(
                    d,
                    """return [...document.querySelectorAll(arguments[0])]
                     .map(tr => tr.cells[0].textContent.trim().split(/\\s+/)[0]);""",
                    f"{card} .caps-table tbody tr",
                )
            )
            and len(cells) == expected
            and cells
        ),
        what=f"{expected} rows in the capability table",
    )
    assert first_cells[0] == caps["formats"][0]["format"]


def timer_seconds(driver, camera_id: str) -> int | None:
    """Seconds on the record button's timer, None while it shows no running timer."""
    button = card_button(driver, camera_id, "record")
    if button.get_attribute("aria-pressed") != "true":
        return None
    match = re.search(r"(\d+):(\d\d)$", button.text.strip())
    return int(match.group(1)) * 60 + int(match.group(2)) if match else None


def first_connected(driver) -> str | None:
    return next((c["id"] for c in cards(driver) if c["status"] == "CONNECTED"), None)


def first_idle(driver) -> str | None:
    """A connected camera whose record button is not pressed (so a click means "start")."""
    return next(
        (
            c["id"]
            for c in cards(driver)
            if c["status"] == "CONNECTED"
            and card_button(driver, c["id"], "record").get_attribute("aria-pressed") != "true"
        ),
        None,
    )


def test_snapshot_is_shown(driver, stack):
    need(stack, "get_camera_list", "take_snapshot", "list_snapshots")
    camera_id = wait(driver, lambda d: first_connected(d), what="a connected camera")
    click_card(driver, camera_id, "snapshot")
    wait(driver, lambda d: d.find_element("id", "snapshot-dialog").get_attribute("open") is not None, 60, "dialog")
    wait(
        driver,
        lambda d: js(d, "const i = document.getElementById('snapshot-image'); return i.complete && i.naturalWidth > 0"),
        30,
        "the snapshot image to load",
    )
    caption = driver.find_element("id", "snapshot-caption").text
    filename = caption.split(" · ")[0]
    shot(driver, "dashboard-snapshot", docs=True)
    click(driver, driver.find_element("id", "snapshot-done"))
    click(driver, driver.find_element("id", "tab-snapshots"))
    wait(driver, lambda d: d.find_elements("css selector", f'#files-snapshots [data-file="{filename}"]'), what="list")
    # The card now previews the picture.
    assert js(
        driver,
        "const i = document.querySelector(`[data-camera='${arguments[0]}'] .preview img`); return !!i && i.naturalWidth > 0",
        camera_id,
    )
    # Its download link works.
    href = driver.find_element("css selector", f'#files-snapshots [data-file="{filename}"] [data-action="download"]')
    with urllib.request.urlopen(href.get_attribute("href"), timeout=10) as resp:
        assert resp.status == 200 and resp.read(3) == b"\xff\xd8\xff"
    assert console_errors(driver) == []


def test_recording_start_stop_and_list(driver, stack):
    need(stack, "get_camera_list", "start_recording", "stop_recording", "list_recordings")
    camera_id = wait(driver, lambda d: first_connected(d), what="a connected camera")
    click_card(driver, camera_id, "record")
    wait(driver, lambda d: card_button(d, camera_id, "record").get_attribute("aria-pressed") == "true", 60, "record")
    # The card may be redrawn between two looks (a stale element): read the timer inside wait().
    started = wait(driver, lambda d: [s] if (s := timer_seconds(d, camera_id)) is not None else None, what="the timer")
    assert started[0] < 5
    wait(driver, lambda d: (timer_seconds(d, camera_id) or 0) >= 2, 30, "the timer to run")
    click(driver, driver.find_element("id", "tab-recordings"))
    shot(driver, "dashboard-recording")
    before = set(
        js(driver, "return [...document.querySelectorAll('#files-recordings [data-file]')].map(e => e.dataset.file)")
    )
    click_card(driver, camera_id, "record")
    wait(driver, lambda d: card_button(d, camera_id, "record").get_attribute("aria-pressed") == "false", 60, "stop")
    new = wait(
        driver,
        lambda d: (
            set(
                js(d, "return [...document.querySelectorAll('#files-recordings [data-file]')].map(e => e.dataset.file)")
            )
            - before
        ),
        30,
        "the new recording in the list",
    )
    assert all(name.startswith(camera_id) for name in new)
    assert console_errors(driver) == []
    # The README's picture: another camera recording, this one's snapshot, the unplugged one, the files.
    other = next((c["id"] for c in cards(driver) if c["status"] == "CONNECTED" and c["id"] != camera_id), None)
    if other is not None:
        click_card(driver, other, "record")
        wait(driver, lambda d: (timer_seconds(d, other) or 0) >= 3, 30, "a second recording")
        # A page opened while it records shows how long it has been recording.
        first_window = driver.current_window_handle
        driver.switch_to.new_window("tab")
        try:
            driver.get(stack.http + "/")
            wait(driver, lambda d: (timer_seconds(d, other) or 0) >= 3, 30, "the timer on a fresh page")
        finally:
            driver.close()
            driver.switch_to.window(first_window)
        wait(
            driver,
            lambda d: "Live" in d.find_element("css selector", f'[data-camera="{other}"] [data-role="stream"]').text,
            15,
            "the recording's stream to be live",
        )
    js(driver, "document.getElementById('toasts').replaceChildren(); window.scrollTo(0, 0);")
    shot(driver, "dashboard", docs=True)
    if other is not None:
        click_card(driver, other, "record")
        wait(driver, lambda d: card_button(d, other, "record").get_attribute("aria-pressed") == "false", 60, "stop")


def test_delete_a_snapshot(driver, stack):
    need(stack, "list_snapshots", "delete_snapshot")
    click(driver, driver.find_element("id", "tab-snapshots"))
    items = driver.find_elements("css selector", "#files-snapshots [data-file]")
    if not items:
        pytest.skip("no snapshot to delete (take_snapshot did not run)")
    name = items[0].get_attribute("data-file")
    button = items[0].find_element("css selector", '[data-action="delete"]')
    click(driver, button)  # arms
    assert "Delete?" in button.text
    click(driver, button)  # confirms
    wait(
        driver,
        lambda d: not d.find_elements("css selector", f'#files-snapshots [data-file="{name}"]'),
        what="the file to leave the list",
    )


def test_camera_controls_panel(driver, stack):
    need(stack, "get_camera_controls", "set_camera_controls", "get_stream_settings", "set_stream_settings")
    from selenium.webdriver.support.ui import Select

    card = wait(
        driver,
        lambda d: next((c for c in cards(d) if c["name"] == CAMERAS[0]["card"] and c["status"] == "CONNECTED"), None),
        what="the C920 card",
    )
    camera_id = card["id"]
    click_card(driver, camera_id, "controls")
    wait(driver, lambda d: d.find_element("id", "controls-dialog").get_attribute("open") is not None, what="dialog")

    def row(name):
        return driver.find_element("css selector", f'#controls-body .control-row[data-control="{name}"]')

    def widget(name):
        return row(name).find_element("css selector", '[data-role="control-input"]')

    wait(driver, lambda d: row("brightness"), what="the controls")
    assert widget("brightness").get_attribute("type") == "range"
    assert widget("white_balance_automatic").get_attribute("type") == "checkbox"
    assert widget("power_line_frequency").tag_name == "select"
    assert widget("button").tag_name == "button"
    assert not widget("sensor_temperature").is_enabled()  # read-only
    assert not widget("exposure_time_absolute").is_enabled()  # inactive: auto exposure is on
    assert "inactive" in row("exposure_time_absolute").text
    assert not driver.find_elements("css selector", '#controls-body .control-row[data-control="string"]')

    def in_camera(cid):
        return stack.bed.command("control_values", name=CAMERAS[0]["name"])["values"][str(cid)]

    # a slider released at 200 reaches the camera
    js(
        driver,
        "const el = arguments[0]; el.value = '200'; el.dispatchEvent(new Event('input'));"
        " el.dispatchEvent(new Event('change'));",
        widget("brightness"),
    )
    wait(driver, lambda d: in_camera(0x00980900) == 200, what="brightness 200 in the camera")
    # switching exposure to manual enables its manual value (live, from camera_controls_update)
    Select(widget("auto_exposure")).select_by_visible_text("Manual Mode")
    wait(driver, lambda d: widget("exposure_time_absolute").is_enabled(), what="exposure time enabled")
    assert in_camera(0x009A0901) == 1
    # a change made outside camsvc shows up by itself
    stack.bed.command("control_values", name=CAMERAS[0]["name"], set={str(0x00980901): 9})
    wait(driver, lambda d: widget("contrast").get_attribute("value") == "9", 20, "contrast 9 from the watch")
    # stream settings: choose 640x480 and apply
    Select(driver.find_element("css selector", '[data-role="stream-size"]')).select_by_value("640x480")
    click(driver, driver.find_element("css selector", '[data-action="apply-stream"]'))
    wait(
        driver,
        lambda d: "640×480" in d.find_element("css selector", '[data-role="stream-active"]').text,
        what="the new mode",
    )
    shot(driver, "dashboard-controls", docs=True)
    click(driver, driver.find_element("id", "controls-done"))
    assert driver.find_element("id", "controls-dialog").get_attribute("open") is None
    assert console_errors(driver) == []
    # leave the camera as it was for the tests that follow
    with RpcClient(stack.url) as c:
        if stack.auth_required:
            c.call("authenticate", {"auth_token": stack.admin_key})
        c.call("reset_camera_controls", {"device": camera_id})
        c.call("set_stream_settings", {"device": camera_id, "width": None, "height": None, "fps": None})


def test_controls_have_accessible_names(driver):
    unnamed = js(
        driver,
        """return [...document.querySelectorAll('button, a[href], input, [role=tab]')]
             .filter(el => el.offsetParent !== null)
             .filter(el => !((el.getAttribute('aria-label') || '').trim() || (el.textContent || '').trim()
                             || (el.labels && el.labels.length)))
             .map(el => el.outerHTML.slice(0, 120));""",
    )
    assert unnamed == []


def test_phone_layout(driver, stack):
    set_viewport(driver, 390, 844, scale=2, mobile=True)
    try:
        driver.execute_script("window.scrollTo(0, 0); document.getElementById('toasts').replaceChildren();")
        time.sleep(0.5)
        overflow = js(driver, "return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
        shot(driver, "dashboard-phone", docs=True)
    finally:
        set_viewport(driver, WIDTH, HEIGHT)


# -- with authentication ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory):
    ok, reason = stack_available()
    if not ok:
        pytest.skip(reason)
    live = LiveStack(
        tmp_path_factory.mktemp("dashboard-auth"), config={"auth": {"required": True, "login_timeout": 2}}
    ).start()
    yield live
    live.stop()


def sign_in(driver, token: str) -> None:
    field = driver.find_element("id", "login-token")
    field.clear()
    field.send_keys(token)
    click(driver, driver.find_element("id", "login-submit"))


def test_sign_in_roles_and_sign_out(auth_stack):
    need(auth_stack, "authenticate", "get_camera_list", "take_snapshot")
    auth_stack.wait_cameras(lambda cams: sum(c["status"] == "CONNECTED" for c in cams) >= 2)
    browser = start_browser(WIDTH, HEIGHT)
    driver = browser.driver
    try:
        set_viewport(driver, WIDTH, HEIGHT)
        driver.get(auth_stack.http + "/")
        dialog = wait(
            driver,
            lambda d: d.find_element("id", "login-dialog").get_attribute("open") is not None,
            what="the sign-in dialog",
        )
        assert dialog and driver.find_element("id", "conn-pill").text == "Sign-in needed"
        sign_in(driver, "not-a-token")
        error = wait(driver, lambda d: d.find_element("id", "login-error").text, what="the refusal")
        assert error.startswith("The token was refused: ") and "Authentication failed" not in error
        shot(driver, "dashboard-signin")
        # Someone looking for their token for longer than auth.login_timeout: camsvc closes the
        # unauthenticated connection; the page waits quietly and reconnects on submit.
        wait(driver, lambda d: "not authenticated within 2 s" in auth_stack.camsvc.log(), what="the login timeout")
        assert driver.find_element("id", "conn-banner").is_displayed() is False
        assert driver.find_element("id", "conn-pill").text == "Sign-in needed"
        sign_in(driver, auth_stack.token("viewer"))
        wait(driver, lambda d: d.find_element("id", "login-dialog").get_attribute("open") is None, what="sign-in")
        camera_id = wait(driver, lambda d: first_connected(d), what="the cameras")
        button = card_button(driver, camera_id, "snapshot")
        assert not button.is_enabled() and button.get_attribute("title") == "Needs the operator role"
        assert driver.find_element("id", "sign-out").is_displayed()
        # The token is kept for the tab: a reload needs no sign-in.
        driver.refresh()
        wait(driver, lambda d: d.find_element("id", "conn-pill").text == "Live", what="reconnect after reload")
        wait(driver, lambda d: first_connected(d), what="the cameras after reload")
        assert driver.find_element("id", "login-dialog").get_attribute("open") is None
        click(driver, driver.find_element("id", "sign-out"))
        wait(driver, lambda d: d.find_element("id", "login-dialog").get_attribute("open") is not None, what="sign-out")
        assert js(driver, "return sessionStorage.getItem('camsvc.token')") is None
        sign_in(driver, auth_stack.token("operator", kind="jwt"))
        camera_id = wait(driver, lambda d: first_connected(d), what="the cameras as operator")
        wait(driver, lambda d: card_button(d, camera_id, "snapshot").is_enabled(), what="an enabled Snapshot")
        click_card(driver, camera_id, "snapshot")
        wait(
            driver,
            lambda d: js(
                d, "const i = document.getElementById('snapshot-image'); return i.complete && i.naturalWidth > 0"
            ),
            60,
            "the snapshot through its signed link",
        )
        assert "token=" in driver.find_element("id", "snapshot-image").get_attribute("src")
        click(driver, driver.find_element("id", "snapshot-done"))
        # A camera that stops answering while it is probed: ERROR, with the reason on its card.
        auth_stack.bed.add_camera(name="flaky", card="Flaky Cam", serial="FLAKY", port="4", fail_after=3)
        flaky = wait(
            driver,
            lambda d: next((c for c in cards(d) if c["name"] == "Flaky Cam" and c["status"] == "ERROR"), None),
            20,
            "the flaky camera in ERROR",
        )
        card = driver.find_element("css selector", f'[data-camera="{flaky["id"]}"]')
        assert "Error" in card.find_element("css selector", '[data-role="status"]').text
        wait(
            driver,
            lambda d: "vanished" in d.find_element("css selector", f'[data-camera="{flaky["id"]}"] .facts').text,
            10,
            "the reason of the error",
        )
        # A JWT that expires while the page is open: the next action brings the sign-in back.
        click(driver, driver.find_element("id", "sign-out"))
        wait(driver, lambda d: d.find_element("id", "login-dialog").get_attribute("open") is not None, what="sign-out")
        # Long enough for a loaded machine to sign in with it; the click comes after its
        # "exp" (read from the token) has passed, whatever the time that took.
        short = admin(auth_stack.camsvc.config_path, "token", "--role", "operator", "--lifetime", "10")
        sign_in(driver, short)
        camera_id = wait(driver, lambda d: first_connected(d), what="the cameras with a short token")
        wait(driver, lambda d: card_button(d, camera_id, "snapshot").is_enabled(), what="Snapshot")
        expires = jwt.decode(short, options={"verify_signature": False})["exp"]
        time.sleep(max(0.0, expires - time.time()) + 1.0)
        # The next action brings the sign-in back, unless the server's end of the expired
        # session (its sweeper, or the connection dropped and re-made) brought it already.
        if driver.find_element("id", "login-dialog").get_attribute("open") is None:
            from selenium.common.exceptions import ElementClickInterceptedException

            try:
                click_card(driver, camera_id, "snapshot")
            except ElementClickInterceptedException:  # the dialog opened between check and click
                pass
        wait(
            driver,
            lambda d: d.find_element("id", "login-dialog").get_attribute("open") is not None,
            15,
            "sign-in again",
        )
        assert "expired" in driver.find_element("id", "login-error").text
        assert js(driver, "return sessionStorage.getItem('camsvc.token')") is None
        assert console_errors(driver) == []
    finally:
        browser.quit()


def test_mediamtx_outage_is_shown_in_plain_words(driver, stack):
    """Last on the main page: stops the MediaMTX stand-in."""
    need(stack, "get_streams", "start_recording")
    driver.refresh()
    wait(driver, lambda d: d.find_element("id", "conn-pill").text == "Live", what="the page")
    camera_id = wait(driver, lambda d: first_idle(d), what="a connected camera that is not recording")
    stack.mediamtx.stop()
    toast = wait(
        driver,
        lambda d: next(
            (t.text for t in d.find_elements("css selector", "#toasts .toast.error") if "MediaMTX" in t.text), None
        ),
        30,
        "the MediaMTX outage toast",
    )
    assert "not answering" in toast
    wait(
        driver,
        lambda d: "Failing" in d.find_element("css selector", '#checks [data-check="mediamtx"]').text,
        20,
        "the failing MediaMTX check",
    )
    assert driver.find_element("id", "health-pill").text == "Degraded"
    click_card(driver, camera_id, "record")
    message = wait(
        driver,
        lambda d: next(
            (t.text for t in d.find_elements("css selector", "#toasts .toast.error") if "Could not start" in t.text),
            None,
        ),
        30,
        "the refusal to record",
    )
    assert "The media server (MediaMTX) is not answering" in message and "-32006" not in message
    shot(driver, "dashboard-mediamtx-down")
    assert console_errors(driver) == []


def test_https_page_uses_wss(tmp_path):
    """Served over TLS, the page opens its WebSocket with wss:// (allowed by its CSP)."""
    import ssl

    from tests.support.server import ServiceProcess
    from tests.test_tls import make_certificate

    cert, key = make_certificate(tmp_path)
    proc = ServiceProcess(
        tmp_path, {"server": {"tls": {"cert": cert, "key": key}}}, ssl_context=ssl.create_default_context(cafile=cert)
    ).start()
    # The test's certificate is self-signed: this browser is told to accept it.
    browser = start_browser(1000, 700, flags=("--ignore-certificate-errors",))
    try:
        driver = browser.driver
        driver.get(proc.http + "/")
        assert driver.current_url.startswith("https://")
        wait(driver, lambda d: d.find_element("id", "conn-pill").text == "Live", what="the wss connection")
        assert js(driver, "return document.getElementById('conn-pill').title").startswith("Connected to wss://")
        assert console_errors(driver) == []
    finally:
        browser.quit()
        proc.stop_cleanly()
