"""The approver's page (`GET /admin/`, DESIGN.md section 6) in a real browser: headless Chromium through Selenium.

An agent (the official MCP Python SDK's ClientSession, in a background thread) calls a tool whose policy entry says
`action: approve`; the call waits while a human decides on the page.

1. `test_sign_in_and_approve_with_javascript`: sign in (a wrong token is refused, the right one sets an HttpOnly,
   SameSite=Strict cookie); the pending call appears by the page's own refresh (the test never reloads), with its tool,
   grant and pretty-printed arguments, markup in them shown as text; a screenshot is saved to
   Tests/e2e/artifacts/admin-page.png (and a phone-sized one to admin-page-phone.png); at 390x844 the buttons fit the
   viewport; Approve lets the waiting call run the real tool at once.
2. `test_deny_with_javascript_off`: the plain-form fallback: sign in and Deny with scripts disabled; the decision is a
   303 back to the list with a notice, and the agent's call answers `approval_denied`.
3. `test_sign_out`: the list page's Sign out form (a plain POST, also with JavaScript on) clears the cookie.

Both: every request the browser made went to the sidecar's own origin (the performance log), the browser console
has no SEVERE entry (a CSP violation is one), and the page's documents carry a `default-src 'none'` CSP.

Chromium and chromedriver are Debian's (/usr/bin/chromium, /usr/bin/chromedriver); Selenium Manager never runs, and
the browser cannot resolve any host name but loopback addresses, so nothing is fetched from outside.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from helpers import denial_of, handshake_session, run_async, text_of

E2E_DIR = Path(__file__).resolve().parent
ARTIFACTS = E2E_DIR / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# upstream_mcp_server.py: transfer(amount: int, tag: str, force: bool, opts: dict) records what it ran with under
# `tag` (GET /_transfers), so a test sees the tool really ran, and with which arguments.
TOOL = "transfer"
GRANT = "default"  # no --grants: every caller is grant "default"
POLICY: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "tools": {TOOL: {"action": "approve", "approval": {"wait": "30s", "ttl": "1h"}}},
}
CARD_SECONDS = 8.0  # the page refreshes every 2 s; the SDK client's connect and handshake come first
DECIDED_SECONDS = 5.0  # a decision on this sidecar wakes the waiting call at once
PHONE = (390, 844)

T = TypeVar("T")

pytestmark = pytest.mark.timeout(90)


# ---------------------------------------------------------------------------------------------------------
# The agent: one SDK call in a background thread (Selenium is synchronous)


class AgentCall:
    """`session.call_tool(TOOL, arguments)` on its own session, event loop and thread."""

    def __init__(self, url: str, arguments: dict[str, Any]) -> None:
        self.url, self.arguments = url, arguments
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"agent-{arguments.get('tag')}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        async def call() -> Any:
            async with handshake_session(self.url) as session:
                return await session.call_tool(TOOL, self.arguments)

        try:
            self.result = run_async(call, timeout=45.0)
        except BaseException as e:  # noqa: BLE001 - reported by wait()
            self.error = e
        finally:
            self.finished = time.monotonic()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the agent's call did not finish within {timeout} s"
        if self.error is not None:
            raise AssertionError(f"the agent's call failed: {self.error!r}") from self.error
        return self.result


def transfers(upstream: Any, tag: str) -> list[dict[str, Any]]:
    """What the upstream's `transfer` ran with under `tag`."""
    response = httpx2.get(f"http://127.0.0.1:{upstream.port}/_transfers", timeout=5.0)
    response.raise_for_status()
    return response.json().get(tag, [])


def pending_approvals(base: str, token: str) -> list[dict[str, Any]]:
    response = httpx2.get(f"{base}/admin/approvals", headers={"Authorization": f"Bearer {token}"}, timeout=5.0)
    assert response.status_code == 200, (response.status_code, response.text)
    return [a for a in response.json()["approvals"] if a.get("state") == "pending"]


def pretty(arguments: dict[str, Any]) -> str:
    """The page's rendering: two-space indented JSON, keys in canonical (sorted) order."""
    return json.dumps(arguments, indent=2, sort_keys=True, ensure_ascii=False)


def new_arguments(amount: int) -> dict[str, Any]:
    """Arguments with a nested object, a list, and markup that must be shown as text, never rendered."""
    tag = f"<b>bold?</b> & <i>{uuid.uuid4().hex[:8]}</i>"
    return {
        "amount": amount,
        "tag": tag,
        "force": True,
        "opts": {"note": "<b>not bold</b>", "limits": {"currency": "EUR", "daily": 3}, "regions": ["eu-west", "us-east"]},
    }


# ---------------------------------------------------------------------------------------------------------
# The browser


class Browser:
    """One headless Chromium; keeps every performance (network) and console log entry it has produced."""

    def __init__(self, driver: webdriver.Chrome, origin: str) -> None:
        self.driver, self.origin = driver, origin
        self.network: list[dict[str, Any]] = []  # CDP Network.* events, in order
        self.console: list[dict[str, Any]] = []

    def drain(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method", "").startswith("Network."):
                self.network.append(message)
        self.console.extend(self.driver.get_log("browser"))

    def requested_urls(self) -> list[str]:
        self.drain()
        urls: list[str] = []
        for event in self.network:
            params = event.get("params", {})
            if event["method"] == "Network.requestWillBeSent":
                urls.append(params["request"]["url"])
            elif event["method"] == "Network.webSocketCreated":
                urls.append(params["url"])
        return urls

    def responses(self, path: str) -> list[dict[str, Any]]:
        """Every response (redirects included) to a URL on our origin with this path, in order."""
        self.drain()
        found: list[dict[str, Any]] = []
        for event in self.network:
            params = event.get("params", {})
            if event["method"] == "Network.requestWillBeSent" and params.get("redirectResponse"):
                response = params["redirectResponse"]
            elif event["method"] == "Network.responseReceived":
                response = params["response"]
            else:
                continue
            if response["url"].split("?")[0] == self.origin + path:
                found.append(response)
        return found

    def request_headers(self, path: str) -> list[dict[str, str]]:
        """The headers as sent (`requestWillBeSentExtraInfo`) of every request to this path on our origin."""
        self.drain()
        ids = {e["params"]["requestId"] for e in self.network if e["method"] == "Network.requestWillBeSent"
               and e["params"]["request"]["url"].split("?")[0] == self.origin + path}
        return [e["params"]["headers"] for e in self.network if e["method"] == "Network.requestWillBeSentExtraInfo"
                and e["params"]["requestId"] in ids]

    def severe_console(self) -> list[dict[str, Any]]:
        self.drain()
        return [e for e in self.console if e.get("level") == "SEVERE"]

    def assert_only_own_origin_and_clean_console(self, allowed_severe: Callable[[str], bool] = lambda m: False) -> None:
        urls = self.requested_urls()
        assert urls, "the performance log recorded no request at all: network logging is not working"
        foreign = [u for u in urls if not (u == self.origin or u.startswith(self.origin + "/"))]
        assert not foreign, f"the page made requests outside {self.origin}: {foreign}\nall requests: {urls}"
        blocked = [e["params"] for e in self.network if e["method"] == "Network.loadingFailed"
                   and e["params"].get("blockedReason")]
        assert not blocked, f"requests were blocked (CSP or otherwise): {blocked}"
        severe = [e for e in self.severe_console() if not allowed_severe(e.get("message", ""))]
        assert not severe, "the browser console has errors:\n" + "\n".join(e.get("message", "") for e in severe)

    def cards(self) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, "#list article.card")


def _chrome(tmp_path: Path, name: str, origin: str, *, javascript: bool) -> Browser:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is missing: install Debian's chromium and chromium-driver (scripts/bootstrap.sh)",
                        pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
        f"--user-data-dir={tmp_path / f'chrome-{name}'}",
        "--no-first-run", "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", "--disable-default-apps", "--metrics-recording-only",
        "--disable-features=Translate,OptimizationHints,MediaRouter,InterestFeedContentSuggestions",
        # No host resolves but the sidecar's own address: nothing from outside could load even if asked.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    if not javascript:
        options.add_argument("--blink-settings=scriptEnabled=false")
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / f"chromedriver-{name}.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(15)
    # The browser's own start page (chrome:// resources) is not the page under test: leave it, forget its log.
    driver.get("about:blank")
    browser = Browser(driver, origin)
    browser.drain()
    browser.network.clear()
    browser.console.clear()
    return browser


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Callable[..., Browser]]:
    """Factory: `browsers(name, origin, javascript=True)` → a fresh headless Chromium, quit at the test's end."""
    started: list[Browser] = []

    def start(name: str, origin: str, *, javascript: bool = True) -> Browser:
        browser = _chrome(tmp_path, name, origin, javascript=javascript)
        started.append(browser)
        return browser

    yield start
    for browser in started:
        try:
            browser.driver.quit()
        except Exception:  # noqa: BLE001 - teardown of a browser that may have crashed
            pass


def retry_stale(fn: Callable[[], T], timeout: float = 5.0) -> T:
    """The script re-renders the list every 2 s: run `fn` again when an element it held was replaced meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except StaleElementReferenceException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_for(browser: Browser, what: str, condition: Callable[[], T | None], timeout: float) -> T:
    def probe(_: Any) -> T | None:
        try:
            return condition()
        except StaleElementReferenceException:
            return None

    try:
        return WebDriverWait(browser.driver, timeout, poll_frequency=0.1).until(probe)
    except TimeoutException:
        raise AssertionError(f"not within {timeout} s: {what}\ncurrent URL: {browser.driver.current_url}\n"
                             f"page:\n{browser.driver.find_element(By.TAG_NAME, 'body').text}") from None


def card_for(browser: Browser, tag: str) -> WebElement | None:
    for card in browser.cards():
        if tag in card.find_element(By.TAG_NAME, "pre").text:
            return card
    return None


def sign_in(browser: Browser, token: str) -> None:
    field = browser.driver.find_element(By.CSS_SELECTOR, "form[action='/admin/login'] input#token")
    assert field.get_attribute("name") == "token" and field.get_attribute("type") == "password"
    field.clear()
    field.send_keys(token)
    browser.driver.find_element(By.CSS_SELECTOR, "form[action='/admin/login'] button[type=submit]").click()


def assert_signed_in_cookie(browser: Browser, token: str) -> None:
    cookies = {c["name"]: c for c in browser.driver.get_cookies()}
    assert "toolgate_admin" in cookies, f"no toolgate_admin cookie after signing in: {list(cookies.values())}"
    cookie = cookies["toolgate_admin"]
    assert cookie.get("httpOnly") is True, cookie
    assert cookie.get("sameSite") == "Strict", cookie
    assert cookie.get("path") == "/admin", cookie
    assert token not in cookie.get("value", ""), "the cookie must not carry the admin token itself"


def assert_card(card: WebElement, arguments: dict[str, Any]) -> None:
    """Tool, grant, pretty-printed arguments (markup as text), expiry, and both buttons."""
    assert card.find_element(By.CSS_SELECTOR, "h2 .tool").text == TOOL
    assert card.find_element(By.CSS_SELECTOR, "h2 .grant").text == f"for {GRANT}"
    pre = card.find_element(By.TAG_NAME, "pre")
    assert pre.get_attribute("textContent") == pretty(arguments), pre.get_attribute("textContent")
    # Escaped: the literal `<b>` is text, and no element was made of it.
    assert "<b>not bold</b>" in pre.text
    assert not card.find_elements(By.CSS_SELECTOR, "b, i"), card.get_attribute("innerHTML")
    assert "&lt;b&gt;" in pre.get_attribute("innerHTML")
    meta = card.find_element(By.CSS_SELECTOR, "p.meta").text
    assert re.match(r"^expires in (59 min|1 h 0 min) · \S+$", meta), meta
    for cls, label in (("approve", "Approve"), ("deny", "Deny")):
        button = card.find_element(By.CSS_SELECTOR, f"form.actions button.{cls}")
        assert (button.text, button.get_attribute("name"), button.get_attribute("value")) == (label, "decision", cls)


def assert_csp(browser: Browser) -> None:
    documents = [r for r in browser.responses("/admin/") if r.get("status") == 200]
    assert documents, "no 200 response for /admin/ in the performance log"
    for response in documents:
        headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
        assert "default-src 'none'" in headers.get("content-security-policy", ""), headers


def save_screenshot(browser: Browser, name: str, record_property: Callable[[str, Any], None]) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    assert browser.driver.save_screenshot(str(path)), f"could not save {path}"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    print(f"screenshot of the approvals page: {path}")
    record_property(f"screenshot {name}", str(path))
    return path


def token_file(tmp_path: Path) -> tuple[Path, str]:
    token = secrets.token_urlsafe(32)  # 43 characters
    path = tmp_path / "admin.token"
    path.write_text(token + "\n")
    return path, token


def login_refused(origin: str) -> Callable[[str], bool]:
    """The one console error a wrong token may cause: Chrome reports the form POST's deliberate 401."""
    return lambda message: message.startswith(f"{origin}/admin/login ") and "status of 401" in message


# ---------------------------------------------------------------------------------------------------------
# 1. With JavaScript: sign in, the call appears by itself, Approve; phone-sized layout


def test_sign_in_and_approve_with_javascript(toolgate, mcp_upstream_json, browsers, tmp_path, record_property):
    admin_file, token = token_file(tmp_path)
    tg = toolgate(mcp_upstream_json.url, POLICY, args=["--admin-token-file", str(admin_file)])
    browser = browsers("js", tg.base)
    driver = browser.driver

    # The sign-in form; a wrong token is refused on the form itself, without a cookie.
    driver.get(f"{tg.base}/admin/")
    assert driver.title == "toolgate approvals: sign in"
    assert not driver.find_elements(By.ID, "list")
    sign_in(browser, "x" * 43)
    error = wait_for(browser, "the wrong token's error", lambda: driver.find_element(By.CSS_SELECTOR, "p.error"), 5)
    assert error.text == "That is not the admin token.", error.text
    assert driver.find_elements(By.ID, "token"), "the sign-in form must be shown again"
    assert not driver.get_cookies(), driver.get_cookies()
    # Chrome reports the refused POST's 401 on the console: the only console error allowed, and only here.
    browser.drain()
    wrong_token_errors = [e for e in browser.console if e.get("level") == "SEVERE"]
    assert all(login_refused(tg.base)(e["message"]) for e in wrong_token_errors), wrong_token_errors
    browser.console.clear()

    # The right token: the (empty) list.
    sign_in(browser, token)
    wait_for(browser, "the list page", lambda: driver.find_elements(By.ID, "list"), 5)
    assert driver.title == "toolgate approvals"
    assert driver.current_url == f"{tg.base}/admin/", driver.current_url
    assert driver.find_element(By.CSS_SELECTOR, "#list p.empty").text == "No approvals are waiting."
    assert_signed_in_cookie(browser, token)

    # The agent calls; the page shows it by its own refresh (the marker survives: no navigation happened).
    driver.execute_script("window.e2eMarker = 'same document';")
    arguments = new_arguments(7)
    tag = arguments["tag"]
    call = AgentCall(tg.url, arguments)
    wait_for(browser, "the pending call's card", lambda: card_for(browser, tag), CARD_SECONDS)
    assert driver.execute_script("return window.e2eMarker;") == "same document", "the page was reloaded"
    assert not call.done, f"the call should be waiting for a decision: {call.result!r} {call.error!r}"
    retry_stale(lambda: assert_card(card_for(browser, tag), arguments))
    approval_id = retry_stale(lambda: card_for(browser, tag).get_attribute("data-id"))
    assert [a["id"] for a in pending_approvals(tg.base, token)] == [approval_id]
    save_screenshot(browser, "admin-page.png", record_property)

    # A phone: the buttons are shown, inside the viewport, and nothing scrolls sideways.
    width, height = PHONE
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True})
    try:
        wait_for(browser, "the phone-sized viewport",
                 lambda: driver.execute_script("return document.documentElement.clientWidth;") == width, 5)

        def buttons_fit() -> None:
            card = card_for(browser, tag)
            assert card is not None
            for cls in ("approve", "deny"):
                button = card.find_element(By.CSS_SELECTOR, f"button.{cls}")
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
                assert button.is_displayed(), cls
                rect = driver.execute_script("var r = arguments[0].getBoundingClientRect();"
                                             "return [r.left, r.right, r.width, r.height];", button)
                left, right, w, h = rect
                assert w > 40 and h > 20, (cls, rect)
                assert 0 <= left and right <= width, f"the {cls} button overflows a {width} px viewport: {rect}"
            scroll_width = driver.execute_script("return document.documentElement.scrollWidth;")
            assert scroll_width <= width, f"the page scrolls sideways at {width} px: scrollWidth {scroll_width}"

        retry_stale(buttons_fit)
        driver.execute_script("window.scrollTo(0, 0);")
        save_screenshot(browser, "admin-page-phone.png", record_property)
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # Approve: the waiting call runs the real tool at once; the page says what was decided.
    retry_stale(lambda: card_for(browser, tag).find_element(By.CSS_SELECTOR, "button.approve").click())
    clicked = time.monotonic()
    result = call.wait(DECIDED_SECONDS + 5)
    assert call.finished is not None and call.finished - clicked < DECIDED_SECONDS, call.finished - clicked
    assert result.is_error is False, f"the approved call was not run: {result!r}"
    assert text_of(result).startswith("transferred 7 (force=True, opts="), text_of(result)
    assert transfers(mcp_upstream_json, tag) == [{"amount": 7, "force": True, "opts": arguments["opts"]}]
    notice = wait_for(browser, "the notice", lambda: driver.find_element(By.ID, "notice").text or None, 5)
    assert notice == f"{TOOL} for {GRANT}: approved", notice
    # The call used the approval: its card goes at the next refresh.
    wait_for(browser, "the used approval's card to go", lambda: card_for(browser, tag) is None, 5)
    assert driver.execute_script("return window.e2eMarker;") == "same document", "the page was reloaded"
    decisions = browser.responses("/admin/decide")
    assert [r["status"] for r in decisions] == [200], decisions

    assert_csp(browser)
    browser.assert_only_own_origin_and_clean_console()


# ---------------------------------------------------------------------------------------------------------
# 2. Without JavaScript: plain forms, Deny


def test_deny_with_javascript_off(toolgate, mcp_upstream_json, browsers, tmp_path):
    admin_file, token = token_file(tmp_path)
    tg = toolgate(mcp_upstream_json.url, POLICY, args=["--admin-token-file", str(admin_file)])

    arguments = new_arguments(9)
    tag = arguments["tag"]
    call = AgentCall(tg.url, arguments)
    deadline = time.monotonic() + CARD_SECONDS
    while not (pending := pending_approvals(tg.base, token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pending) == 1 and pending[0]["arguments"]["tag"] == tag, pending
    approval_id = pending[0]["id"]

    browser = browsers("nojs", tg.base, javascript=False)
    driver = browser.driver
    driver.get(f"{tg.base}/admin/")
    sign_in(browser, token)
    wait_for(browser, "the list page", lambda: driver.find_elements(By.ID, "list"), 5)
    assert_signed_in_cookie(browser, token)
    card = card_for(browser, tag)
    assert card is not None and card.get_attribute("data-id") == approval_id
    assert_card(card, arguments)
    assert not call.done, f"the call should be waiting for a decision: {call.result!r} {call.error!r}"

    card.find_element(By.CSS_SELECTOR, "button.deny").click()
    decisions = wait_for(browser, "the answer to the Deny form", lambda: browser.responses("/admin/decide"), 5)
    # A plain form POST answered 303 back to the list, which names the decision.
    assert [r["status"] for r in decisions] == [303], (
        f"the Deny form's POST /admin/decide answered {[r['status'] for r in decisions]}, not 303: "
        f"{driver.find_element(By.TAG_NAME, 'body').text!r}\n"
        f"request headers as sent: {browser.request_headers('/admin/decide')}")
    wait_for(browser, "the list after the decision", lambda: "decided=" in driver.current_url, 5)
    assert decisions[0]["headers"].get("location", decisions[0]["headers"].get("Location", "")).startswith(
        "/admin/?decided="), decisions[0]["headers"]
    assert driver.current_url.split("?")[0] == f"{tg.base}/admin/", driver.current_url
    assert driver.find_element(By.ID, "notice").text == f"{approval_id}: denied"
    card = card_for(browser, tag)
    assert card is not None and card.find_element(By.CSS_SELECTOR, "p.state.denied").text == "Denied"
    assert not card.find_elements(By.TAG_NAME, "button"), "a decided approval has no buttons"

    result = call.wait(DECIDED_SECONDS + 5)
    assert result.is_error is True, f"expected a denial, got {result!r}"
    denial = denial_of(result)
    assert (denial.get("reason"), denial.get("approvalId"), denial.get("rule")) == ("approval_denied", approval_id,
                                                                                 TOOL), denial
    assert transfers(mcp_upstream_json, tag) == [], "a denied call must not reach the upstream"

    # Scripts really were off: the script's 2-second refresh never fetched /admin/approvals.
    time.sleep(2.5)
    assert not browser.responses("/admin/approvals"), "the page's script ran although JavaScript is disabled"
    assert_csp(browser)
    browser.assert_only_own_origin_and_clean_console()


# ---------------------------------------------------------------------------------------------------------
# 3. Sign out (a plain form on the list page, JavaScript or not)


def test_sign_out(toolgate, mcp_upstream_json, browsers, tmp_path):
    admin_file, token = token_file(tmp_path)
    tg = toolgate(mcp_upstream_json.url, POLICY, args=["--admin-token-file", str(admin_file)])
    browser = browsers("signout", tg.base)
    driver = browser.driver
    driver.get(f"{tg.base}/admin/")
    sign_in(browser, token)
    wait_for(browser, "the list page", lambda: driver.find_elements(By.ID, "list"), 5)
    assert_signed_in_cookie(browser, token)

    driver.find_element(By.CSS_SELECTOR, "form[action='/admin/logout'] button[type=submit]").click()
    answers = wait_for(browser, "the answer to the Sign out form", lambda: browser.responses("/admin/logout"), 5)
    assert [r["status"] for r in answers] == [303], (
        f"the Sign out form's POST /admin/logout answered {[r['status'] for r in answers]}, not 303: "
        f"{driver.find_element(By.TAG_NAME, 'body').text!r}\n"
        f"request headers as sent: {browser.request_headers('/admin/logout')}")
    wait_for(browser, "the sign-in form", lambda: driver.find_elements(By.ID, "token"), 5)
    assert driver.current_url == f"{tg.base}/admin/", driver.current_url
    assert not [c for c in driver.get_cookies() if c["name"] == "toolgate_admin"], driver.get_cookies()
    browser.assert_only_own_origin_and_clean_console()
