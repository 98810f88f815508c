"""Sharpen (a 3x3 kernel on the raw values, in the WebGL2 shader and the canvas path alike) and
the magnifier, on the striped phantom whose values are known."""
from __future__ import annotations

from typing import Any

import pytest

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, PHONE, press
from tests.frontends.phantom import HEADER_WINDOW, grey, hu, store_ct
from tests.frontends.test_viewer import SETTLE_JS, opened, url

# the grey at one image point, zoomed x16 and centred on it, so no interpolation reaches a neighbour
READ_AT_JS = """async ([x, y]) => {
  const vp = window.yunyingViewer.viewports[0], w = vp.el.clientWidth, h = vp.el.clientHeight;
  vp.set({ zoom: 16, panX: 0, panY: 0 });
  const [cx, cy] = vp.imageToClient(x, y);
  vp.set({ panX: w / 2 - cx, panY: h / 2 - cy });
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const c = vp.canvas, o = document.createElement('canvas'); o.width = c.width; o.height = c.height;
  const ctx = o.getContext('2d'); ctx.drawImage(c, 0, 0);
  const dpr = window.devicePixelRatio || 1;
  return ctx.getImageData(Math.floor(w / 2 * dpr), Math.floor(h / 2 * dpr), 1, 1).data[0];
}"""


@pytest.fixture(scope="module")
def study(archive: YunyingServer) -> str:
    return store_ct(archive, 2, 256)[0]


def grey_at(page: Any, x: float, y: float) -> int:
    return int(page.evaluate(READ_AT_JS, [x, y]))


@pytest.mark.parametrize("renderer", ["2d", "webgl2", "int"])
def test_sharpen_is_the_kernel_on_the_raw_values(open_page: Any, archive: YunyingServer, study: str, renderer: str) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, f"&lang=en&renderer={renderer}"))
    # the last column of stripe 2 (x 95) and the first of stripe 3 (x 96): 100 HU apart
    points = {"inside": (112.5, 128.5), "left of edge": (95.5, 128.5), "right of edge": (96.5, 128.5)}
    plain = {k: grey_at(page, *xy) for k, xy in points.items()}
    wanted = {"inside": hu(3, 0), "left of edge": hu(2, 0), "right of edge": hu(3, 0)}
    assert all(abs(plain[k] - grey(v, *HEADER_WINDOW)) <= 1.5 for k, v in wanted.items()), plain
    press(page, "#sharpen")
    assert page.get_attribute("#sharpen", "aria-pressed") == "true"
    sharp = {k: grey_at(page, *xy) for k, xy in points.items()}
    # centre + (4 centre - neighbours): one neighbour 100 HU away -> 100 HU further from it
    wanted = {"inside": hu(3, 0), "left of edge": hu(2, 0) - 100, "right of edge": hu(3, 0) + 100}
    assert all(abs(sharp[k] - grey(v, *HEADER_WINDOW)) <= 1.5 for k, v in wanted.items()), sharp
    press(page, "#sharpen")
    assert grey_at(page, *points["right of edge"]) == plain["right of edge"]
    assert not p.errors, p.errors


def test_the_magnifier_shows_the_pixels_under_the_pointer_enlarged(open_page: Any, archive: YunyingServer, study: str) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, "&lang=en"))
    page.click("#tool-magnify")
    box = page.locator(".viewport").bounding_box()
    at = page.evaluate("window.yunyingViewer.viewports[0].imageToClient(128, 128)")  # between stripes 3 and 4
    page.mouse.move(box["x"] + at[0], box["y"] + at[1])
    page.mouse.down()
    page.evaluate(SETTLE_JS)
    assert page.is_visible(".viewport canvas.lens")
    lens = page.evaluate("""() => { const l = document.querySelector('.viewport canvas.lens'), c = l.getContext('2d');
      const row = c.getImageData(0, l.height / 2, l.width, 1).data; const out = [];
      for (let i = 0; i < l.width; i++) out.push(row[4 * i]); return { width: l.width, css: l.clientWidth, row: out }; }""")
    greys = lens["row"]
    centre = greys[lens["width"] // 2 - 8]  # left of the centre: stripe 3
    assert abs(centre - grey(hu(3, 0), *HEADER_WINDOW)) <= 1.5
    assert abs(greys[lens["width"] // 2 + 8] - grey(hu(4, 0), *HEADER_WINDOW)) <= 1.5  # right of it: stripe 4
    # a stripe is 32 image pixels: on screen 32 * fit; in the lens twice that
    fit = page.evaluate("window.yunyingViewer.viewports[0].imageToClient(32, 0)[0] - window.yunyingViewer.viewports[0].imageToClient(0, 0)[0]")
    run = sum(1 for g in greys if abs(g - grey(hu(3, 0), *HEADER_WINDOW)) <= 1.5) / (lens["width"] / lens["css"])
    assert run == pytest.approx(min(2 * fit, lens["css"] / 2), rel=0.1)  # the lens shows stripe 3 up to its centre
    page.mouse.up()
    assert not page.is_visible(".viewport canvas.lens")
    assert not p.errors, p.errors


def test_phone_has_the_tools_but_patient_mode_not(open_page: Any, archive: YunyingServer, study: str) -> None:
    p = open_page(**PHONE, locale="zh-CN")
    page = opened(p.page, url(archive, study))
    assert page.inner_text("#tool-magnify") == "放大镜" and page.inner_text("#sharpen") == "锐化"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    patient = open_page(**PHONE)
    page = opened(patient.page, url(archive, study, "&mode=patient"))
    for absent in ("#tool-magnify", "#sharpen", "#tool-cobb", "#tool-point", "#save"):
        assert page.locator(absent).count() == 0, absent
    assert not p.errors and not patient.errors
