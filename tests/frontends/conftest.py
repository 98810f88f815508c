"""Browser fixtures for the front ends: Debian's Chromium driven by Playwright, against a real
archive started on a free port."""
from __future__ import annotations

import re
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


# the start of a JavaScript function: `() =>`, `(a, b) =>`, `x =>`, `function`, `async ...`
_FUNCTION = re.compile(r"\s*(async\b\s*)?(function\b|\([^()]*\)\s*=>|[\w$]+\s*=>)")


def csp_safe(page: Any) -> Any:
    """`page` whose wait_for_function takes bare expressions under the pages' CSP: Playwright
    polls a bare expression with eval() in the page, which the CSP refuses (no 'unsafe-eval');
    a function is compiled through DevTools, so the expression is passed as one."""
    real = page.wait_for_function

    def wait_for_function(expression: str, *args: Any, **kwargs: Any) -> Any:
        if not _FUNCTION.match(expression):
            expression = f"() => ({expression})"
        return real(expression, *args, **kwargs)

    page.wait_for_function = wait_for_function
    return page


class Page:
    """A fresh browser context (empty cache, own profile) with its console errors collected.
    The pages run under their real Content-Security-Policy (a violation is a console error);
    pass bypass_csp=True only with a comment saying why the test needs it."""

    def __init__(self, browser: Any, **context: Any) -> None:
        self.context = browser.new_context(**context)
        self.page = csp_safe(self.context.new_page())
        self.context.on("page", lambda page: page is self.page or csp_safe(page))  # new pages, popups
        self.errors: list[str] = []
        # net::ERR_NETWORK_CHANGED: Chromium dropping requests when the machine's interfaces change
        # (another test's server or cluster coming up), not an error of the page
        self.page.on("console", lambda m: self.errors.append(m.text)
                     if m.type == "error" and "ERR_NETWORK_CHANGED" not in m.text else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # what the CSP refused (Chromium says so on the console): checked after every test
        self.refused: list[str] = []
        self.context.on("console", lambda m: self.refused.append(m.text)
                        if "Content Security Policy" in m.text else None)
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
    refused = [r for p in pages for r in p.refused]
    assert not refused, refused  # a page broke its Content-Security-Policy


def press(page: Any, selector: str, tap: bool = False) -> None:
    """Click (or tap) a toolbar button, opening its bar menu first when it lives in one (toolbar.js)."""
    if not page.is_visible(selector):
        menu = page.evaluate("s => document.querySelector(s)?.closest('.menu.group')?.id || ''", selector)
        if menu:
            opener = "#group-" + menu.removeprefix("menu-")
            page.tap(opener) if tap else page.click(opener)
    page.tap(selector) if tap else page.click(selector)
