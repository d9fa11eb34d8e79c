"""The dashboard in a real headless Chromium, on the example pipeline under `runtime serve`.

Orders flow at 20 a second; one invoice is refused by the charge's gate and dead-lettered.
The page must show rates above zero, the lag the server reports, that dead letter decoded
through the registry, and after a click on replay (and the confirmation) the count at zero.
`runtime ui` reads the server as an ACL user with a password that must appear nowhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import urllib.request
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from gristmill import keys
from gristmill.producer import Publisher
from services.schemas import LineItem, Order
from tests.helpers.procs import serve
from tests.ui.conftest import start_ui

if TYPE_CHECKING:
    from pathlib import Path

    import redis as sync_redis
    from selenium.webdriver.remote.webdriver import WebDriver

    from gristmill.embedded import EmbeddedServer

APPS = ("tests.ui.gated_shop:app", "tests.ui.gated_shop:audit")
GATED = "order-gated"
DEAD = keys.dead_lane("invoices", "payments.charge")
QUIET_ENTRIES = 7  # in `refunds`, which nobody serves: the lag of audit.review

pytestmark = pytest.mark.slow  # ~10 s: a pipeline, the dashboard and a browser as processes


async def _publish_gated(url: str) -> None:
    client = Redis.from_url(url)
    try:
        order = Order(id=GATED, customer_id="customer-gated", currency="EUR")
        order.items.append(LineItem(sku="samovar", quantity=1, unit_price_cents=240_00))
        order.placed_at.GetCurrentTime()
        await Publisher(client).publish("orders.placed", order)
        for n in range(QUIET_ENTRIES):
            await Publisher(client).publish("refunds", Order(id=f"refund-{n}"))
        await client.xgroup_create("refunds", "audit.review", id="0")
    finally:
        await client.aclose()


def _text(browser: WebDriver, css: str) -> str:
    """The text of the first element matching `css`, read in one step: the page redraws
    itself every interval, so an element found first and read after may be gone."""
    script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';"
    text: str = browser.execute_script(script, css)
    return text


def _click(browser: WebDriver, element_id: str) -> None:
    for _ in range(20):
        try:
            browser.find_element(By.ID, element_id).click()
        except StaleElementReferenceException:
            continue  # redrawn between finding and clicking: find it again
        return
    raise AssertionError(f"#{element_id} kept being redrawn")


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        body: bytes = reply.read()
    return body.decode()


def test_the_page_shows_the_pipeline_and_replays_a_dead_letter(
    server: EmbeddedServer, db: sync_redis.Redis, browser: WebDriver, tmp_path: Path
) -> None:
    password = secrets.token_hex(12)
    db.acl_setuser(
        "ui-reader",
        enabled=True,
        passwords=[f"+{password}"],
        keys=["*"],
        channels=["*"],
        commands=["+@all"],
    )
    secret_url = f"redis://ui-reader:{password}@127.0.0.1:{server.port}/0"
    gate = tmp_path / "gate"
    gate.write_text(GATED)
    with serve(APPS[0], env={"GRISTMILL_REDIS_URL": server.url, "UI_TEST_GATE": str(gate)}) as w:
        w.wait_for_line(r"serving \d+ processors", within=30)
        w.wait_for(lambda: db.xlen("receipts") > 0, within=20, what="orders flowing end to end")
        asyncio.run(_publish_gated(server.url))
        w.wait_for(lambda: db.xlen(DEAD) == 1, within=20, what="the gated invoice dead-lettered")
        gate.write_text("")  # the gateway takes it now: a replay goes through
        ui, base = start_ui(
            *APPS, "--allow-actions", "--interval", "0.5", env={"GRISTMILL_REDIS_URL": secret_url}
        )
        with ui:
            browser.get(base + "/")
            wait = WebDriverWait(browser, 20, poll_frequency=0.1)
            validate = 'tr[data-stream="orders.placed"][data-group="orders.validate"] td'
            wait.until(lambda b: (_number(_text(b, f"{validate}:nth-child(4)")) or 0) > 0)
            assert (_number(_text(browser, "#total-rate")) or 0) > 0
            audit = 'tr[data-stream="refunds"][data-group="audit.review"] td'
            wait.until(lambda b: _text(b, f"{audit}:nth-child(6)") != "")
            (group,) = db.xinfo_groups("refunds")
            assert group["lag"] == QUIET_ENTRIES
            assert _text(browser, f"{audit}:nth-child(6)") == str(QUIET_ENTRIES)
            assert _number(_text(browser, f"{audit}:nth-child(4)")) in (None, 0.0)  # no reader
            edge = _text(browser, '[data-edge="stream:refunds>group:audit.review"]')
            assert f"lag {QUIET_ENTRIES}" in edge
            assert browser.find_elements(By.CSS_SELECTOR, '[data-node="group:payments.charge"]')
            wait.until(lambda b: GATED in _text(b, "#shown-payload"))
            shown = json.loads(_text(browser, "#shown-payload"))
            assert shown["orderId"] == GATED  # the Invoice, decoded through the registry
            assert shown["totalCents"] == "24000"  # protobuf's JSON mapping: int64 as text
            assert _text(browser, "#total-dead") == "1"
            assert "gateway_refused 1" in _text(browser, "#reasons")
            wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "svg.spark polyline"))
            wait.until(lambda b: "example.orders.Invoice" in _text(b, "#schemas"))
            assert "sweeper" in _text(browser, "#leases")
            picture = tmp_path / "dashboard.png"
            assert browser.save_screenshot(str(picture))
            assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if os.environ.get("UI_SCREENSHOT"):  # docs/images/dashboard.png is made this way
                shutil.copyfile(picture, os.environ["UI_SCREENSHOT"])

            _click(browser, "replay-entry")
            alert = wait.until(lambda b: b.switch_to.alert)
            assert "Replay entry" in alert.text
            alert.accept()
            wait.until(lambda b: _text(b, "#total-dead") == "0")
            assert "replayed 1" in _text(browser, "#action-result")
            assert db.xlen(DEAD) == 0
            assert "no dead letters" in _text(browser, "#lanes")

            pages = [browser.page_source] + [
                _get(base + path) for path in ("/", "/api/live", "/api/inventory")
            ]
            pages.append(_get(f"{base}/api/lane?stream=invoices&group=payments.charge"))
            assert all(password not in page for page in pages)
            assert all("ui-reader" not in page for page in pages)
            assert f"redis://127.0.0.1:{server.port}/0" in browser.page_source
        assert password not in ui.output
