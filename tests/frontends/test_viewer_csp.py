"""The new viewer tools run under the pages' real Content Security Policy (the other front-end
tests bypass it for Playwright's polling): saving the SR, the magnifier, the viewport screenshot,
the study list's calendar."""
from __future__ import annotations

import time
from typing import Any

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, press
from tests.frontends.phantom import store_ct
from tests.frontends.test_viewer import drag_image, url


def until(page: Any, expression: str, seconds: float = 30) -> None:
    """wait_for_function polls with eval, which the CSP forbids; evaluate goes through DevTools."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, expression
        page.wait_for_timeout(100)


def test_tools_under_the_csp(browser: Any, archive: YunyingServer) -> None:
    study = store_ct(archive, 2, 64)[0]
    context = browser.new_context(**DESKTOP, accept_downloads=True)  # no bypass_csp
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url(archive, study, "&lang=en"))
        until(page, "performance.getEntriesByName('full-fidelity').length > 0")
        page.wait_for_selector(".series-card")
        for tool in ("#tool-length", "#tool-magnify"):
            press(page, tool)
            drag_image(page, (10, 20), (50, 20))
        press(page, "#save")
        page.wait_for_selector("#status:has-text('saved to the archive')", timeout=30000)
        press(page, "#export")
        with page.expect_download() as done:
            page.click("#export-shot")
        assert done.value.suggested_filename == "viewport.jpg"
        page.goto(f"{archive.http_url}/viewer/?lang=en")
        page.wait_for_selector("#search .cal-open")
        page.locator("#search .cal-open").first.click()
        page.wait_for_selector(".calendar .cal-title")
        assert not errors, errors
    finally:
        context.close()
