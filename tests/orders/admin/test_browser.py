"""The admin page in a real browser: headless Chromium driven by Selenium, against
``orders serve`` running as its own process.

Debian's ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` are used, named by path, so
that nothing is downloaded. Without them the test skips, saying so; under
``CQRSKIT_REQUIRE_SERVERS`` (CI) it fails instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest
from e2e.test_serve import base_env
from ops.conftest import SECRET, Service
from ops.test_projections import ACCEPT_SQLITE, REJECT_SQLITE
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from orders.auth import Role, TokenService

__all__ = ["base_env"]

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PROJECTIONS = ["catalog", "customers", "order_details", "order_search", "sales_report"]
FLAGS = [
    "--headless=new",
    "--no-sandbox",  # we run as root in CI, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,1700",
]
T = TypeVar("T")


def _require_chromium() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    reason = f"{' and '.join(missing)} missing (apt-get install chromium chromium-driver)"
    if os.environ.get("CQRSKIT_REQUIRE_SERVERS"):
        pytest.fail(reason + " (CQRSKIT_REQUIRE_SERVERS forbids skipping)")
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Chrome]:
    _require_chromium()
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must fetch nothing
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        options=options,
        service=DriverService(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log")),
    )
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def service(base_env: dict[str, str]) -> Iterator[Service]:
    running = Service({**base_env, "ORDERS_JWT_SECRET": SECRET}, "sqlite", None)
    try:
        yield running
    finally:
        running.stop()


def until(driver: Chrome, check: Callable[[Chrome], T], what: str, timeout: float = 10) -> T:
    """``check``'s first truthy answer (the page redraws as it polls; a check that meets
    a row being replaced just runs again)."""
    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[WebDriverException]
    )
    answer: T = wait.until(check, f"waiting for {what}")
    return answer


def shown(element: WebElement) -> WebElement | Literal[False]:
    return element.is_displayed() and element


def js(driver: Chrome, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def projection_rows(driver: Chrome) -> dict[str, dict[str, str]]:
    return dict(
        js(
            driver,
            """return [...document.querySelectorAll('#projections tbody tr')].map(r =>
                 [r.dataset.projection, {state: r.dataset.state, parked: r.dataset.parked}])""",
        )
    )


def test_staff_watch_projections_handle_parked_events_and_read_streams(
    service: Service, browser: Chrome, tmp_path: Path
) -> None:
    customer = service.register()
    order = service.place(customer, service.add_product())
    service.read_sql(REJECT_SQLITE)
    refused = service.register(f"reject-{uuid.uuid4().hex[:8]}@example.com")
    dropped = service.register(f"reject-{uuid.uuid4().hex[:8]}@example.com")
    token = TokenService(SECRET).issue("staff", Role.STAFF)

    browser.get(f"{service.server.url}/admin")
    # A customer's token is turned away, and not kept.
    box = browser.find_element("id", "token")
    box.send_keys(TokenService(SECRET).issue(customer, Role.CUSTOMER))
    browser.find_element("id", "sign-in").click()
    note = until(browser, lambda d: shown(d.find_element("id", "login-error")), "the refusal")
    assert note
    assert "not a staff token" in note.text
    assert not browser.find_element("id", "admin").is_displayed()
    assert js(browser, "return sessionStorage.getItem('orders-admin-token')") is None

    box.clear()
    box.send_keys(token)
    browser.find_element("id", "sign-in").click()

    # Every projection listed, live and caught up, with the refused sign-ups parked.
    until(
        browser,
        lambda d: (
            sorted(rows := projection_rows(d)) == PROJECTIONS
            and all(r["state"] == "live" for r in rows.values())
            and rows["customers"]["parked"] == "2"
        ),
        "five live projections, two parked events",
    )
    parked_row = '[data-parked-of="customers"] tr[data-stream="Customer-{}"]'
    row = until(
        browser,
        lambda d: d.find_element("css selector", parked_row.format(refused)),
        "the parked rows",
    )
    assert f"Customer-{refused}" in row.text
    assert "CustomerRegistered" in row.text
    assert "refused by ops_reject" in row.text
    browser.save_screenshot(str(tmp_path / "admin-parked.png"))

    # The stream of the parked event, by a click.
    row.find_element("css selector", "button.stream-link").click()
    until(
        browser,
        lambda d: "CustomerRegistered" in d.find_element("id", "stream-events").text,
        "the refused customer's stream",
    )
    assert refused in browser.find_element("id", "stream-events").text

    # The cause fixed, a click on Retry applies it: the row goes, the count drops.
    service.read_sql(ACCEPT_SQLITE)
    browser.find_element("css selector", f"{parked_row.format(refused)} button.retry").click()
    until(
        browser,
        lambda d: (
            not d.find_elements("css selector", parked_row.format(refused))
            and projection_rows(d)["customers"]["parked"] == "1"
        ),
        "the retried event to be gone",
    )
    assert "applied and unparked" in browser.find_element("id", "flash").text
    assert service.http.get(f"/api/v1/customers/{refused}").status_code == 200

    # Discard asks why, then drops the other one for good.
    browser.find_element("css selector", f"{parked_row.format(dropped)} button.discard").click()
    reason = until(browser, lambda d: shown(d.find_element("id", "discard-reason")), "the dialog")
    assert reason
    assert f"Customer-{dropped}" in browser.find_element("id", "discard-what").text
    reason.send_keys("a test sign-up")
    browser.save_screenshot(str(tmp_path / "admin-discard.png"))
    browser.find_element("id", "discard-confirm").click()
    until(
        browser,
        lambda d: (
            not d.find_elements("css selector", "[data-parked-of] tr[data-parked-id]")
            and projection_rows(d)["customers"]["parked"] == "0"
        ),
        "the discarded event to be gone",
    )
    assert "discarded" in browser.find_element("id", "flash").text
    assert "No parked events" in browser.find_element("id", "parked").text
    assert service.http.get(f"/api/v1/customers/{dropped}").status_code == 404

    # An order's stream: clicked in the tail of latest events, then typed in.
    link = f'#tail-events button.stream-link[data-stream="Order-{order}"]'
    until(browser, lambda d: d.find_element("css selector", link), "the order in the tail").click()
    until(
        browser,
        lambda d: "OrderPlaced" in d.find_element("id", "stream-events").text,
        "the order's stream",
    )
    payload = browser.find_element("css selector", "#stream-events pre.payload").text
    assert f'"order_id": "{order}"' in payload  # pretty-printed JSON
    box = browser.find_element("id", "stream-id")
    box.clear()
    box.send_keys(f"Customer-{customer}")
    browser.find_element("id", "stream-show").click()
    until(
        browser,
        lambda d: (
            f"Customer-{customer}" in d.find_element("id", "stream").text
            and "CustomerRegistered" in d.find_element("id", "stream-events").text
        ),
        "the typed stream",
    )

    browser.save_screenshot(str(tmp_path / "admin.png"))
    assert token not in browser.current_url
    assert js(browser, "return sessionStorage.getItem('orders-admin-token')") == token
    errors = [
        e
        for e in browser.get_log("browser")  # type: ignore[no-untyped-call]
        if e["level"] == "SEVERE" and "status of 403" not in e["message"]  # the customer's
    ]
    assert not errors, errors  # no script error, no resource refused or missing
