"""The Cobb angle, cardiothoracic ratio, point value, arrow and text tools on the striped phantom
(known values and spacing), by mouse and by touch, saved in the SR and drawn again after reload."""
from __future__ import annotations

import math
from typing import Any

import pytest

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, PHONE, press
from tests.frontends.phantom import hu, store_ct
from tests.frontends.test_viewer import drag_image, opened, url
from tests.frontends.test_viewer_sr import marks, sr_instances


@pytest.fixture(scope="module")
def study(archive: YunyingServer) -> str:
    return store_ct(archive, 2, 256)[0]


def label_of(page: Any, kind: str) -> str:
    return str(page.text_content(f"svg.marks .measure.{kind} text"))


def test_cobb_ctr_point_arrow_and_text(open_page: Any, archive: YunyingServer, study: str) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, "&lang=en"))
    answers = iter(["nodule", "see note"])
    page.on("dialog", lambda d: d.accept(next(answers)))
    press(page, "#tool-cobb")
    rise = 200 * math.tan(math.radians(30))
    drag_image(page, (20, 60), (220, 60))  # one endplate, level
    drag_image(page, (20, 120), (220, 120 + rise))  # the other, 30 degrees to it
    assert float(label_of(page, "cobb").split()[1].rstrip("°")) == pytest.approx(30, abs=0.5)
    press(page, "#tool-ctr")
    drag_image(page, (50, 180), (150, 180))  # heart: 100 px
    drag_image(page, (20, 200), (220, 200))  # thorax: 200 px
    assert label_of(page, "ctr") == "CTR 0.50"
    press(page, "#tool-point")
    drag_image(page, (110, 90), (110, 90))  # a tap in stripe 3
    assert label_of(page, "point") == f"Value {hu(3, 0):.1f} HU"
    press(page, "#tool-arrow")
    drag_image(page, (40, 40), (90, 20))
    assert label_of(page, "arrow") == "nodule"
    press(page, "#tool-text")
    drag_image(page, (200, 30), (200, 30))
    assert label_of(page, "text") == "see note"
    before = sorted(marks(page))
    press(page, "#save")
    page.wait_for_function("document.querySelector('#status').innerText.includes('saved to the archive')", timeout=30000)
    assert len(sr_instances(archive, study)) == 1
    page.reload()
    page.wait_for_function("document.querySelectorAll('svg.marks .measure').length === 5", timeout=30000)
    page.wait_for_function("document.querySelector('svg.marks .measure.point text').textContent.includes('HU')")
    assert sorted(marks(page)) == before
    assert not p.errors, p.errors


def test_phone_taps_a_point_value(open_page: Any, archive: YunyingServer) -> None:
    p = open_page(**PHONE, locale="zh-CN")
    page = opened(p.page, url(archive, store_ct(archive, 1, 256)[0]))  # no saved marks
    press(page, "#tool-point")
    assert page.inner_text("#tool-point") == "点值"
    box = page.locator(".viewport").bounding_box()
    at = page.evaluate("window.yunyingViewer.viewports[0].imageToClient(150, 100)")  # stripe 4
    page.touchscreen.tap(box["x"] + at[0], box["y"] + at[1])
    page.wait_for_function("document.querySelector('svg.marks .measure.point text') !== null")
    assert label_of(page, "point") == f"值 {hu(4, 0):.1f} HU"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not p.errors, p.errors


def texts(page: Any, kind: str) -> list[str]:
    return list(page.eval_on_selector_all(f"svg.marks .measure.{kind} text", "ts => ts.map(t => t.textContent)"))


def path_image(page: Any, points: list[tuple[float, float]]) -> None:
    """A mouse path through image points (a freehand outline)."""
    box = page.locator(".viewport").bounding_box()
    at = [page.evaluate(f"window.yunyingViewer.viewports[0].imageToClient({x}, {y})") for x, y in points]
    page.mouse.move(box["x"] + at[0][0], box["y"] + at[0][1])
    page.mouse.down()
    for a in at[1:]:
        page.mouse.move(box["x"] + a[0], box["y"] + a[1], steps=6)
    page.mouse.up()


def test_rectangle_circle_freehand_and_polygon_regions(open_page: Any, archive: YunyingServer) -> None:
    from tests.frontends.phantom import SPACING

    study = store_ct(archive, 1, 256)[0]  # stripe k: columns 32k to 32k + 31, HU known
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, "&lang=en"))
    press(page, "#tool-rect")
    drag_image(page, (100, 100), (124, 140))  # inside stripe 3: 24 x 40 pixels
    area, mean, extremes = texts(page, "rect")
    assert area == f"Area {24 * 40 * SPACING ** 2:.1f} mm²"
    assert mean == f"Mean {hu(3, 0):.1f} SD 0.0" and extremes == f"Min {hu(3, 0):.0f} Max {hu(3, 0):.0f} HU"
    press(page, "#tool-circle")
    drag_image(page, (176, 128), (176, 138))  # centre in stripe 5, radius 10 pixels
    circle = page.locator("svg.marks .measure.circle circle")
    assert circle.evaluate("c => getComputedStyle(c).stroke") == "rgb(255, 212, 0)"  # drawn, not only labelled
    area, mean, _ = texts(page, "circle")
    assert area == f"Area {math.pi * 100 * SPACING ** 2:.1f} mm²" and mean.startswith(f"Mean {hu(5, 0):.1f} SD 0.0")
    press(page, "#tool-freehand")
    # a right triangle over stripes 1 to 3, its sides off the pixel centres (a centre exactly on the
    # outline is in or out by rounding: the report's 32-bit coordinates could flip it)
    path_image(page, [(40.25, 40.25), (100.25, 40.25), (40.25, 100.25), (40.25, 40.25)])
    area, _, extremes = texts(page, "freehand")
    assert float(area.split()[1]) == pytest.approx(60 * 60 / 2 * SPACING ** 2, rel=0.03)
    assert extremes == f"Min {hu(1, 0):.0f} Max {hu(3, 0):.0f} HU"
    press(page, "#tool-polygon")  # a tap per corner, the first corner again closes it
    for x, y in [(100, 150), (124, 150), (124, 190), (100, 190), (100.5, 150.5)]:
        drag_image(page, (x, y), (x, y))
    area, mean, _ = texts(page, "polygon")
    assert area == f"Area {24 * 40 * SPACING ** 2:.1f} mm²" and mean == f"Mean {hu(3, 0):.1f} SD 0.0"
    assert page.evaluate("window.yunyingViewer.measurements.draft") is None
    press(page, "#values")  # numbers off, shapes stay
    assert not page.locator("svg.marks .measure.rect text").first.is_visible()
    assert page.locator("svg.marks .measure.rect polyline").is_visible()
    press(page, "#values")
    before = sorted(marks(page))
    press(page, "#save")
    page.wait_for_function("document.querySelector('#status').innerText.includes('saved to the archive')", timeout=30000)
    page.reload()
    page.wait_for_function("document.querySelectorAll('svg.marks .measure').length === 4", timeout=30000)
    page.wait_for_function("document.querySelectorAll('svg.marks .measure text').length === 12")
    assert sorted(marks(page)) == before
    assert not p.errors, p.errors
