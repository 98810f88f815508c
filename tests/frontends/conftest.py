"""Browser fixtures for the front ends: Debian's Chromium driven by Playwright, against a real
archive started on a free port."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.net import YunyingServer, start_yunying
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, missing_tool  # noqa: F401 - re-exported for the front-end tests

PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}
DESKTOP: dict[str, Any] = {"viewport": {"width": 1366, "height": 768}}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    srv = start_yunying(tmp_path_factory.mktemp("viewer") / "data")
    yield srv
    srv.stop()


class Page:
    """A fresh browser context (empty cache, own profile) with its console errors collected."""

    def __init__(self, browser: Any, **context: Any) -> None:
        # Playwright polls string predicates with eval, which the pages' CSP forbids (issue 12);
        # tests/dicomweb/test_hardening.py loads the pages under their CSP
        self.context = browser.new_context(**{"bypass_csp": True, **context})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        # net::ERR_NETWORK_CHANGED: Chromium dropping requests when the machine's interfaces change
        # (another test's server or cluster coming up), not an error of the page
        self.page.on("console", lambda m: self.errors.append(m.text)
                     if m.type == "error" and "ERR_NETWORK_CHANGED" not in m.text else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.failed: list[str] = []  # answers >= 400, for the message of a failing assertion
        self.page.on("response", lambda r: self.failed.append(f"{r.status} {r.request.method} {r.url}")
                     if r.status >= 400 else None)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    pages: list[Page] = []

    def make(**context: Any) -> Page:
        pages.append(Page(browser, **context))
        return pages[-1]

    yield make
    for p in pages:
        p.close()


def press(page: Any, selector: str, tap: bool = False) -> None:
    """Click (or tap) a toolbar button, opening its bar menu first when it lives in one (toolbar.js)."""
    if not page.is_visible(selector):
        menu = page.evaluate("s => document.querySelector(s)?.closest('.menu.group')?.id || ''", selector)
        if menu:
            opener = "#group-" + menu.removeprefix("menu-")
            page.tap(opener) if tap else page.click(opener)
    page.tap(selector) if tap else page.click(selector)
