"""The OHIF Viewer (npm @ohif/app prebuilt dist/) reads a study from the archive in headless
Chromium: the study list shows it, the viewport paints it, no DICOMweb request fails."""
from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.net import auth_headers, start_yunying
from conformance.data import build_test_data
from conformance.ohif import OhifServer, fetch_ohif, serve_ohif
from conformance.runner import Context
from tests.conftest import missing_tool

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAINT_TIMEOUT_S = 90
QUIET_S = 3.0


def _missing(reason: str) -> None:
    missing_tool(reason, module=True)


if shutil.which("npm") is None:
    _missing("npm not installed (needed to fetch @ohif/app)")

# Non-black pixels of the viewport's canvas; overlays are HTML/SVG outside it.
PAINTED_PIXELS_JS = """() => Array.from(document.querySelectorAll('canvas.cornerstone-canvas'))
  .map(c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] | d[i+1] | d[i+2]) n++;
              return n; })"""


@pytest.fixture(scope="module")
def ohif_dist() -> Path:
    return fetch_ohif()


@pytest.fixture(params=["orthanc", "yunying"])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh archive's DICOMweb root, holding only the runner's study A."""
    if request.param == "orthanc":
        srv: Any = request.getfixturevalue("orthanc_fresh")
    else:
        srv = start_yunying(tmp_path / "data")
        request.addfinalizer(srv.stop)
    yield srv.dicomweb_url


@pytest.fixture
def orthanc_fresh(tmp_path: Path) -> Iterator[Any]:
    from benchmarks.orthanc import orthanc_available, start_orthanc

    if not orthanc_available():
        _missing("Orthanc not installed")
    srv = start_orthanc(tmp_path / "orthanc")
    yield srv
    srv.stop()


def _wait_quiet(ohif: OhifServer, seconds: float, limit: float) -> None:
    """Wait until the proxy has seen no new DICOMweb request for `seconds`."""
    deadline = time.monotonic() + limit
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        if len(ohif.log) != seen:
            seen, since = len(ohif.log), time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(0.25)


def test_ohif_opens_and_paints_the_study(archive: str, ohif_dist: Path, pw: Any) -> None:
    data = build_test_data()
    key = auth_headers(archive).get("Authorization", "").removeprefix("Bearer ") or None
    ctx = Context(archive, None, data, api_key=key)
    assert ctx.stow(data.studies["A"]).status_code == 200
    ctx.close()
    study = data.study_uid("A")

    failed: list[str] = []
    with serve_ohif(ohif_dist, archive, api_key=key) as ohif, \
            tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900})
        try:
            page = browser.new_page()
            page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}")
                    if "/dicomweb/" in r.url else None)
            page.on("response", lambda r: failed.append(f"{r.url} {r.status}")
                    if "/dicomweb/" in r.url and r.status >= 400 else None)

            page.goto(ohif.url + "/", wait_until="load")
            row = page.get_by_text("Zhang, San").first
            row.wait_for(timeout=60_000)                       # the study list shows the study
            row.click()
            page.get_by_text(data.patient_id("A")).first.wait_for(timeout=30_000)
            page.get_by_role("button", name="Basic Viewer").first.click()
            page.wait_for_url(f"**/viewer?*StudyInstanceUIDs={study}*", timeout=30_000)

            painted, deadline = 0, time.monotonic() + PAINT_TIMEOUT_S
            while time.monotonic() < deadline and painted == 0:
                painted = max(page.evaluate(PAINTED_PIXELS_JS) or [0])
                time.sleep(0.5)
            _wait_quiet(ohif, QUIET_S, 60)                     # thumbnails and prefetch included
            page.screenshot(path=str(Path(tempfile.gettempdir()) / "ohif-viewer.png"))
        finally:
            browser.close()

        log = list(ohif.log)
    assert painted > 0, "viewport canvas stayed black"
    assert not failed, failed
    bad = [f"{r.method} {r.path[:120]} -> {r.status}" for r in log if r.status >= 400]
    assert not bad, bad
    kinds = {_kind(r.path) for r in log}
    assert {"qido-studies", "qido-series", "series-metadata", "frames"} <= kinds, kinds
    # Every series' thumbnail (thumbnailRendering 'wadors') fetched a frame successfully.
    framed = {r.path.split("/series/")[1].split("/")[0] for r in log
              if "/frames/" in r.path and r.status == 200}
    assert framed == set(data.series_of("A")), "a series thumbnail fetched no frame"


def _kind(path: str) -> str:
    p = path.split("?")[0]
    if p.endswith("/metadata"):
        return "series-metadata"
    if "/frames/" in p:
        return "frames"
    if p.endswith(("/thumbnail", "/rendered")):
        return "rendered"
    if p.endswith("/series"):
        return "qido-series"
    if p.endswith("/studies"):
        return "qido-studies"
    return p.rsplit("/", 1)[-1]
