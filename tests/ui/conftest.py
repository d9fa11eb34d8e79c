"""A headless Chromium (Debian's, installed on first need) driven by Selenium, and a way to
start `runtime ui` as a child process and find the address it listens on."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from tests.helpers.debian import debian_tool
from tests.helpers.procs import Proc, python_module

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from selenium.webdriver.remote.webdriver import WebDriver

_PACKAGES = ("chromium", "chromium-driver")
_LISTENING = re.compile(r"dashboard on (http://\S+?)/ ")
# Chromium stays off the network: no background requests, and anything that is not loopback
# goes to a proxy port where nothing listens (loopback is never proxied)
_CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--window-size=1640,1400",
    "--no-first-run",
    "--disable-extensions",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-pings",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--proxy-server=http://127.0.0.1:9",
)


@pytest.fixture(scope="session")
def chromium_binaries() -> tuple[str, str]:
    """(chromium, chromedriver), from Debian."""
    return debian_tool("chromium", *_PACKAGES), debian_tool("chromedriver", *_PACKAGES)


@pytest.fixture
def browser(
    chromium_binaries: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[WebDriver]:
    """A fresh headless Chromium for one test; quit afterwards, whatever happens."""
    # the driver path is given, so Selenium Manager is skipped; were it run, it would send no stats
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    chromium, chromedriver = chromium_binaries
    options = Options()
    options.binary_location = chromium
    for flag in _CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def start_ui(*args: str, env: Mapping[str, str]) -> tuple[Proc, str]:
    """`runtime ui args...` as a child, and its base URL once it listens (`--port 0`)."""
    proc = python_module("gristmill", "ui", "--port", "0", *args, env=env)
    try:
        line = proc.wait_for_line(_LISTENING, within=30)
    except BaseException:
        proc.close()
        raise
    found = _LISTENING.search(line)
    assert found is not None
    return proc, found.group(1)
