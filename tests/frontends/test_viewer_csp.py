"""The viewer tools under the pages' real Content Security Policy (as every page test runs; these
are the tools that make blobs, downloads and drawings): saving the SR, the magnifier, the
viewport screenshot, the study list's calendar."""
from __future__ import annotations

from typing import Any

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, press
from tests.frontends.phantom import store_ct
from tests.frontends.test_viewer import drag_image, url


def test_tools_under_the_csp(open_page: Any, archive: YunyingServer) -> None:
    study = store_ct(archive, 2, 64)[0]
    p = open_page(**DESKTOP, accept_downloads=True)
    page = p.page
    page.goto(url(archive, study, "&lang=en"))
    page.wait_for_function("performance.getEntriesByName('full-fidelity').length > 0", timeout=30000)
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
    assert not p.errors, p.errors
