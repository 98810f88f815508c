"""The viewer's measurement report as OHIF sees it: the OHIF Viewer 3.13 (npm @ohif/app's
prebuilt dist/) opens the study, loads the SR series "Measurements (viewer)" and draws the
length and the ROI with their values (issue 13: "shown again ... as far as possible in OHIF")."""
from __future__ import annotations

import shutil
from typing import Any

import httpx
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from benchmarks.net import YunyingServer
from tests.conftest import missing_tool
from tests.frontends.phantom import store_ct, stow


def test_ohif_draws_the_viewers_measurement_report(browser: Any, archive: YunyingServer) -> None:
    if shutil.which("npm") is None:
        missing_tool("npm not installed (needed to fetch @ohif/app)")
    from conformance.ohif import fetch_ohif, serve_ohif

    study, series = store_ct(archive, 3, 256)
    meta = httpx.get(f"{archive.dicomweb_url}/studies/{study}/series/{series}/metadata", headers=archive.headers).json()
    ds = min(meta, key=lambda d: d["00200013"]["Value"][0])
    sop = ds["00080018"]["Value"][0]
    body = {"images": {sop: {k: v for k, v in ds.items() if k != "7FE00010"}}, "measurements": [
        {"kind": "length", "sop": sop, "frame": 1, "points": [[16, 128], [208, 128]], "value": 96.0, "unit": "mm"},
        {"kind": "roi", "sop": sop, "frame": 1, "points": [[100, 100], [124, 140]], "value": 188.5, "unit": "mm",
         "stats": {"mean": -724, "sd": 0, "min": -724, "max": -724}},
        {"kind": "arrow", "sop": sop, "frame": 1, "points": [[40, 40], [90, 20]], "text": "nodule"}]}
    built = httpx.post(f"{archive.http_url}/api/viewer/sr", json=body, headers=archive.headers)
    assert built.status_code == 200, built.text
    stow(archive, [built.content])
    with serve_ohif(fetch_ohif(), archive.dicomweb_url, api_key=archive.api_key) as ohif:
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        try:
            page = context.new_page()
            page.goto(f"{ohif.url}/viewer?StudyInstanceUIDs={study}")
            card = page.get_by_text("Measurements (viewer)").first
            card.wait_for(timeout=90_000)
            drawn = page.get_by_text("96.00 mm")
            viewport = page.locator("canvas.cornerstone-canvas").first
            for _ in range(20):
                for skip in page.get_by_text("Skip all").all():  # OHIF's first-visit tour covers the page
                    if skip.is_visible():  # (its earlier steps stay in the page, hidden)
                        skip.click()
                try:
                    card.dblclick(timeout=3_000)
                    drawn.first.wait_for(timeout=3_000)
                    break
                except PlaywrightTimeout:
                    pass
                # OHIF 3.13 adds a loaded report's marks after the image has rendered; they appear
                # at the image's next render, as when a reader scrolls one slice away and back
                box = viewport.bounding_box()
                if box:
                    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                    page.mouse.wheel(0, 120)
                    page.wait_for_timeout(700)
                    page.mouse.wheel(0, -120)
                try:
                    drawn.first.wait_for(timeout=3_000)
                    break
                except PlaywrightTimeout:
                    continue
            drawn.first.wait_for(timeout=1_000)
            text = page.inner_text("body")
            assert "Area: 188.50 mm2" in text and "Mean: -724.00" in text
            assert "Something went wrong" not in text
        finally:
            context.close()
