"""The viewer in Debian's Chromium against a real archive: what it paints is the server's values
through the window, and W/L, scrolling, zoom and the languages work by mouse and by touch."""
from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, PHONE, press
from tests.frontends.phantom import HEADER_WINDOW, STRIPES, grey, hu, store_ct

SIZE, SLICES = 256, 5
CENTRES = [(32 * k + 16, SIZE // 2) for k in range(STRIPES)]  # image pixels inside each stripe

# the viewport canvas read back at image points (device pixels through the viewport's transform)
READ_JS = """(points) => {
  const vp = window.yunyingViewer.viewports[0], c = vp.canvas, m = vp.toCanvas();
  const o = document.createElement('canvas'); o.width = c.width; o.height = c.height;
  const ctx = o.getContext('2d'); ctx.drawImage(c, 0, 0);
  return points.map(([x, y]) => { const p = m.transformPoint(new DOMPoint(x, y));
    return ctx.getImageData(Math.floor(p.x), Math.floor(p.y), 1, 1).data[0]; });
}"""
SETTLE_JS = "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


@pytest.fixture(scope="module")
def study(archive: YunyingServer) -> tuple[str, str]:
    return store_ct(archive, SLICES, SIZE)


def url(server: YunyingServer, study: str, query: str = "") -> str:
    return f"{server.http_url}/viewer/?study={study}{query}#access_token={server.api_key}"


def opened(page: Any, address: str) -> Any:
    page.goto(address)
    page.wait_for_function("performance.getEntriesByName('full-fidelity').length > 0", timeout=30000)
    page.wait_for_function("document.querySelectorAll('.series-card').length > 0")  # the whole series is in
    page.evaluate(SETTLE_JS)
    return page


def pixels(page: Any) -> list[int]:
    page.evaluate(SETTLE_JS)
    return list(page.evaluate(READ_JS, CENTRES))


def expected(center: float, width: float, slice_index: int = 0) -> list[float]:
    return [grey(hu(k, slice_index), center, width) for k in range(STRIPES)]


def assert_close(seen: list[int], wanted: list[float], tolerance: float = 1.5) -> None:
    assert all(abs(s - w) <= tolerance for s, w in zip(seen, wanted, strict=True)), (seen, [round(w) for w in wanted])


def corner(page: Any, which: str) -> str:
    page.evaluate(SETTLE_JS)  # the overlay is redrawn on the next frame
    return str(page.inner_text(f".viewport .corner.{which}"))


@pytest.mark.parametrize(("asked", "renderer"), [("webgl2", "webgl2-float"), ("int", "webgl2"), ("2d", "canvas2d"), ("", "canvas2d")])
def test_first_image_is_the_server_values_through_the_header_window(
        open_page: Any, archive: YunyingServer, study: tuple[str, str], asked: str, renderer: str) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study[0], f"&lang=en&renderer={asked}"))
    assert page.get_attribute(".viewport", "data-renderer") == renderer  # R32F, integer textures, canvas 2D; by itself canvas 2D on SwiftShader
    assert_close(pixels(page), expected(*HEADER_WINDOW))
    assert "W 800 L -700" in corner(page, "br")
    assert f"Im 1/{SLICES}" in corner(page, "bl")
    assert "Wang Xiaodong" in corner(page, "tl") and "王 小东" in corner(page, "tl")
    assert page.evaluate("performance.getEntriesByName('first-image').length") == 1
    assert not p.errors


def test_mouse_drag_windows_and_wheel_scrolls(open_page: Any, archive: YunyingServer, study: tuple[str, str]) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study[0], "&lang=en"))
    box = page.locator(".viewport").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 100, y - 50, steps=5)  # CT: 2 HU per pixel: width +200, level -100
    page.mouse.up()
    assert "W 1000 L -800" in corner(page, "br")
    assert_close(pixels(page), expected(-800, 1000))
    page.mouse.wheel(0, 100)  # one notch: the next slice
    page.wait_for_function(f"document.querySelector('.corner.bl').innerText.includes('Im 2/{SLICES}')")
    page.wait_for_function("window.yunyingViewer?.viewports[0].image !== null")
    assert_close(pixels(page), expected(-800, 1000, slice_index=1))
    page.keyboard.press("End")
    page.wait_for_function(f"document.querySelector('.corner.bl').innerText.includes('Im {SLICES}/{SLICES}')")
    assert_close(pixels(page), expected(-800, 1000, slice_index=SLICES - 1))
    press(page, "#invert")
    assert_close(pixels(page), [255 - g for g in expected(-800, 1000, SLICES - 1)])
    page.click("#reset")
    assert_close(pixels(page), expected(*HEADER_WINDOW, slice_index=SLICES - 1))
    assert not p.errors


def touch(cdp: Any, kind: str, points: list[tuple[float, float]]) -> None:
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
        {"x": x, "y": y, "id": i, "radiusX": 1, "radiusY": 1, "force": 1} for i, (x, y) in enumerate(points)]})


def touch_drag(cdp: Any, start: list[tuple[float, float]], end: list[tuple[float, float]], steps: int = 6) -> None:
    touch(cdp, "touchStart", start)
    for s in range(1, steps + 1):
        f = s / steps
        touch(cdp, "touchMove", [(a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f) for a, b in zip(start, end, strict=True)])
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def test_phone_touch_windows_scrolls_and_pinches(open_page: Any, archive: YunyingServer, study: tuple[str, str]) -> None:
    p = open_page(**PHONE, locale="zh-CN")
    page = opened(p.page, url(archive, study[0]))
    assert page.inner_text("#tool-wl") == "窗宽窗位"  # zh-CN from the browser's language
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    cdp = p.context.new_cdp_session(page)
    box = page.locator(".viewport").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    touch_drag(cdp, [(cx, cy)], [(cx - 50, cy + 50)])  # width -100, level +100
    assert "窗宽 700 窗位 -600" in corner(page, "br")
    assert_close(pixels(page), expected(-600, 700))
    bar = page.locator(".viewport .scrollbar").bounding_box()  # the slice scrollbar: drag to the end
    touch_drag(cdp, [(bar["x"] + bar["width"] / 2, bar["y"] + 5)],
               [(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] - 2)])
    page.wait_for_function(f"document.querySelector('.corner.bl').innerText.includes('图像 {SLICES}/{SLICES}')")
    assert_close(pixels(page), expected(-600, 700, slice_index=SLICES - 1))
    zoom0 = page.evaluate("window.yunyingViewer.viewports[0].view.zoom")
    touch_drag(cdp, [(cx - 40, cy), (cx + 40, cy)], [(cx - 120, cy), (cx + 120, cy)])  # pinch out x3
    zoom1 = page.evaluate("window.yunyingViewer.viewports[0].view.zoom")
    assert zoom1 == pytest.approx(zoom0 * 3, rel=0.05)
    middle = pixels(page)[3:5]  # the outer stripes are off screen now
    assert_close(middle, expected(-600, 700, slice_index=SLICES - 1)[3:5])
    stripe = page.evaluate("(() => { const vp = window.yunyingViewer.viewports[0];"
                           " return vp.imageToClient(32, 0)[0] - vp.imageToClient(0, 0)[0]; })()")
    assert stripe == pytest.approx(32 * 390 / SIZE * 3, rel=0.05)  # fitted to 390 px, then x3
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not p.errors


def test_language_switches_in_place(open_page: Any, archive: YunyingServer, study: tuple[str, str]) -> None:
    p = open_page(**DESKTOP, locale="en-US")
    page = opened(p.page, url(archive, study[0]))
    assert page.inner_text("#tool-wl") == "W/L"  # en from navigator.language
    assert "W 800 L -700" in corner(page, "br")
    page.click("#lang")
    page.wait_for_function("document.querySelector('#tool-wl').innerText === '窗宽窗位'")
    assert "窗宽 800 窗位 -700" in corner(page, "br")
    assert "lang=zh-CN" in page.url and "access_token" not in page.url  # the token left the address bar
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert not p.errors


def test_launch_precise_to_one_image(open_page: Any, archive: YunyingServer, study: tuple[str, str]) -> None:
    import httpx

    rows = httpx.get(f"{archive.dicomweb_url}/studies/{study[0]}/series/{study[1]}/instances",
                     params={"InstanceNumber": "3"}, headers=archive.headers).json()
    sop = rows[0]["00080018"]["Value"][0]
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study[0], f"&series={study[1]}&instance={sop}&lang=en"))
    assert "Im 1/1" in corner(page, "bl")
    assert_close(pixels(page), expected(*HEADER_WINDOW, slice_index=2))
    assert not p.errors


def test_unknown_study_says_so(open_page: Any, archive: YunyingServer) -> None:
    p = open_page(**DESKTOP)
    p.page.goto(url(archive, "1.2.3.4.5.6.7.8.9", "&lang=en"))
    p.page.wait_for_function("document.querySelector('#status').innerText.length > 0 && "
                             "!document.querySelector('#status').innerText.includes('Loading')")
    assert re.search("not found|no series", p.page.inner_text("#status"), re.IGNORECASE)


def test_reopening_the_study_downloads_no_pixels_again(open_page: Any, archive: YunyingServer, study: tuple[str, str]) -> None:
    p = open_page(**DESKTOP)
    first = opened(p.page, url(archive, study[0], "&lang=en"))
    first.wait_for_function(f"window.yunyingViewer?.loader.fetched === {SLICES} && "
                            "[...document.querySelectorAll('.series-card img')].every(i => i.complete && i.src)")
    page = p.context.new_page()  # same browser profile: its HTTP cache
    cdp = p.context.new_cdp_session(page)
    cdp.send("Network.enable")
    seen: dict[str, dict[str, Any]] = {}
    cdp.on("Network.responseReceived", lambda e: seen.__setitem__(e["requestId"], e["response"]))
    opened(page, url(archive, study[0], "&lang=en"))
    page.wait_for_function(f"window.yunyingViewer?.loader.fetched === {SLICES}")
    page.wait_for_function("[...document.querySelectorAll('.series-card img')].every(i => i.complete && i.src)")
    pixels_again = [r for r in seen.values() if re.search(r"/(frames/\d+|rendered|thumbnail)(\?|$)", r["url"])]
    assert len(pixels_again) >= SLICES + 1  # frames, preview, thumbnail were asked for ...
    downloaded = [r["url"] for r in pixels_again if not (r.get("fromDiskCache") or r.get("fromPrefetchCache")) and r["status"] != 304]
    assert not downloaded  # ... and answered by the browser cache (or 304)


def drag_image(page: Any, a: tuple[float, float], b: tuple[float, float], vp: int = 0) -> None:
    """A mouse drag between two image points of viewport `vp`."""
    box = page.locator(".viewport").nth(vp).bounding_box()
    pa, pb = (page.evaluate(f"window.yunyingViewer.viewports[{vp}].imageToClient({x}, {y})") for x, y in (a, b))
    page.mouse.move(box["x"] + pa[0], box["y"] + pa[1])
    page.mouse.down()
    page.mouse.move(box["x"] + pb[0], box["y"] + pb[1], steps=4)
    page.mouse.up()


def test_length_angle_and_roi_on_the_phantom(open_page: Any, archive: YunyingServer, study: tuple[str, str]) -> None:
    from tests.frontends.phantom import SPACING

    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study[0], "&lang=en"))
    press(page, "#tool-length")
    drag_image(page, (16, 128), (208, 128))  # 192 pixels of 0.5 mm
    text = page.text_content("svg.marks .measure.length text")
    assert float(text.split()[0]) == pytest.approx(192 * SPACING, rel=0.01) and text.endswith("mm")
    press(page, "#tool-angle")
    drag_image(page, (200, 128), (128, 128))  # first arm, to the vertex
    drag_image(page, (128, 128), (128, 40))   # second arm: a right angle
    assert float(page.text_content("svg.marks .measure.angle text").rstrip("°")) == pytest.approx(90, abs=1)
    press(page, "#tool-roi")
    drag_image(page, (100, 100), (124, 140))  # inside stripe 3 (x 96-127)
    roi = page.text_content("svg.marks .measure.roi")
    assert f"Mean {hu(3, 0):.1f} SD 0.0" in roi and f"Min {hu(3, 0):.0f} Max {hu(3, 0):.0f}" in roi
    shown = re.search(r"Area ([\d.]+) mm²", roi)
    assert shown, roi
    area = float(shown.group(1))
    assert area == pytest.approx(3.14159 * 12 * 20 * SPACING**2, rel=0.01)
    page.keyboard.press("ArrowDown")  # measurements belong to their image
    page.wait_for_function("document.querySelectorAll('svg.marks .measure').length === 0")
    page.keyboard.press("ArrowUp")
    page.wait_for_function("document.querySelectorAll('svg.marks .measure').length === 3")
    assert not p.errors


def test_cine_plays_pauses_and_reverses(open_page: Any, archive: YunyingServer, study: tuple[str, str]) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study[0], "&lang=en"))
    page.wait_for_function(f"window.yunyingViewer?.loader.fetched === {SLICES}")
    assert page.inner_text("#cine-speed") == "30 fps"
    page.click("#cine")
    assert page.inner_text("#cine") == "Pause"
    seen = page.evaluate("""() => new Promise(done => { const vp = window.yunyingViewer.viewports[0], out = [];
      const tick = () => { out.push(vp.index); out.length < 40 ? requestAnimationFrame(tick) : done(out); };
      requestAnimationFrame(tick); })""")
    assert len(set(seen)) == SLICES  # it went round the whole stack
    page.click("#cine-reverse")
    seen = page.evaluate("""() => new Promise(done => { const vp = window.yunyingViewer.viewports[0], out = [];
      const tick = () => { if (out.at(-1) !== vp.index) out.push(vp.index);
        out.length < 6 ? requestAnimationFrame(tick) : done(out); }; requestAnimationFrame(tick); })""")
    steps = {(b - a) % SLICES for a, b in itertools.pairwise(seen)}
    assert steps == {SLICES - 1}  # every step one slice back
    page.click("#cine")
    assert page.inner_text("#cine") == "Play"
    at = page.evaluate("window.yunyingViewer.viewports[0].index")
    page.wait_for_timeout(200)
    assert page.evaluate("window.yunyingViewer.viewports[0].index") == at
    assert not p.errors


ALL_DRAWN = "window.yunyingViewer.viewports.length === {n} && window.yunyingViewer.viewports.every(v => v.image)"


def layout(page: Any, which: str) -> None:
    page.click("#layout")
    page.click(f"#layout-{which}")


def test_layouts_add_viewports(open_page: Any, archive: YunyingServer, study: tuple[str, str]) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study[0], "&lang=en"))
    layout(page, "1x2")
    page.wait_for_function(ALL_DRAWN.format(n=2))
    layout(page, "2x2")
    page.wait_for_function(ALL_DRAWN.format(n=4))
    boxes = [page.locator(".viewport").nth(i).bounding_box() for i in range(4)]
    assert len({(round(b["x"]), round(b["y"])) for b in boxes}) == 4  # a 2x2 grid
    page.locator(".viewport").nth(3).click()
    assert page.evaluate("window.yunyingViewer.active === window.yunyingViewer.viewports[3]")
    for which, n in (("3x4", 12), ("4x6", 24), ("6x8", 48)):
        layout(page, which)
        page.wait_for_function(ALL_DRAWN.format(n=n))
        assert len({round(page.locator(".viewport").nth(i).bounding_box()["y"]) for i in range(n)}) == int(which[0])
    page.once("dialog", lambda d: d.accept("2 x 3"))
    layout(page, "custom")
    page.wait_for_function(ALL_DRAWN.format(n=6))
    assert page.inner_text("#layout") == "Layout 2×3"
    page.once("dialog", lambda d: d.accept("9x9"))  # beyond 8x8: nothing changes
    layout(page, "custom")
    page.evaluate(SETTLE_JS)
    assert page.evaluate("window.yunyingViewer.viewports.length") == 6
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not p.errors, p.errors


def test_images_of_one_series_tiled_page_together(open_page: Any, archive: YunyingServer, study: tuple[str, str]) -> None:
    p = open_page(**PHONE, locale="zh-CN")
    page = opened(p.page, url(archive, study[0]))
    layout(page, "2x2")
    page.wait_for_function(ALL_DRAWN.format(n=4))
    layout(page, "tile")
    shown = "window.yunyingViewer.viewports.map(v => v.series ? v.index + 1 : 0)"
    page.wait_for_function(f"JSON.stringify({shown}) === '[1,2,3,4]'")
    assert page.inner_text("#layout").endswith("▦")
    page.evaluate("window.yunyingViewer.viewports[0].setWindow(-500, 400)")  # the active tile's window: every tile's
    page.wait_for_function("window.yunyingViewer?.viewports.every(v => v.image)")
    assert page.evaluate("window.yunyingViewer.viewports.map(v => [v.view.center, v.view.width])") == [[-500, 400]] * 4
    box = page.locator(".viewport").nth(0).bounding_box()
    page.touchscreen.tap(box["x"] + 20, box["y"] + box["height"] / 2)
    page.keyboard.press("ArrowDown")  # one image on: every tile pages
    page.wait_for_function(f"JSON.stringify({shown}) === '[2,3,4,5]'")
    page.keyboard.press("ArrowDown")  # past the end: the last tile is empty
    page.wait_for_function(f"JSON.stringify({shown}) === '[3,4,5,0]'")
    # the corner text follows the drawn image, a frame after the viewport's state changed
    page.wait_for_function("document.querySelector('.viewport:nth-child(3) .corner.bl').innerText.includes('图像 5/5')")
    assert page.inner_text(".viewport:nth-child(4) .corner.bl") == ""
    layout(page, "1x2")  # a new grid while tiled: tiled again from the active image
    page.wait_for_function(f"JSON.stringify({shown}) === '[3,4]'")
    layout(page, "2x2")
    page.wait_for_function(f"JSON.stringify({shown}) === '[2,3,4,5]'")
    page.locator(".viewport").nth(0).click()
    layout(page, "tile")  # off: the tiles keep their images, scrolling is each viewport's own
    page.keyboard.press("ArrowUp")
    page.wait_for_function(f"JSON.stringify({shown}) === '[1,3,4,5]'")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not p.errors, p.errors


def test_without_a_token_the_viewer_goes_to_the_login_page(open_page: Any, archive: YunyingServer,
                                                           study: tuple[str, str]) -> None:
    """No token: the viewer sends no DICOMweb request and goes to /login through the provider,
    keeping the address to come back to (the whole sign-in: tests/frontends/test_signin.py)."""
    p = open_page(**DESKTOP)
    asked: list[str] = []
    p.page.on("request", lambda r: asked.append(r.url) if "/dicomweb/" in r.url else None)
    p.page.goto(f"{archive.http_url}/viewer/?study={study[0]}&lang=en")
    p.page.wait_for_url(re.compile(r"/login\?next=%2Foauth%2Fauthorize"))
    pending = p.page.evaluate("JSON.parse(sessionStorage.getItem('yunying.signin'))")
    assert pending["back"] == f"/viewer/?study={study[0]}&lang=en" and len(pending["verifier"]) >= 43
    assert not asked and not p.page.evaluate("sessionStorage.getItem('yunying.access_token')")


def test_rotate_and_flip_move_the_stripes(open_page: Any, archive: YunyingServer, study: tuple[str, str]) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study[0], "&lang=en"))
    left = page.evaluate("window.yunyingViewer.viewports[0].imageToClient(16, 128)")  # stripe 0 on screen
    read = "(p) => { const vp = window.yunyingViewer.viewports[0];" \
           " return vp.clientToImage(p[0], p[1]).map(Math.floor); }"
    assert page.evaluate(read, left)[0] // 32 == 0
    press(page, "#flip")
    page.evaluate(SETTLE_JS)
    assert page.evaluate(read, left)[0] // 32 == STRIPES - 1  # the right edge is now on the left
    before = pixels(page)
    assert_close(before, expected(*HEADER_WINDOW))  # the same values, wherever they are drawn
    press(page, "#rotate")
    page.evaluate(SETTLE_JS)
    top = page.evaluate("window.yunyingViewer.viewports[0].imageToClient(16, 128)")
    assert abs(top[0] - page.evaluate("window.yunyingViewer.viewports[0].el.clientWidth") / 2) < 40  # stripes now run across
    assert_close(pixels(page), expected(*HEADER_WINDOW))
    assert not p.errors


def test_patient_mode_has_viewing_tools_and_the_notice(open_page: Any, archive: YunyingServer, study: tuple[str, str]) -> None:
    p = open_page(**PHONE)
    page = opened(p.page, url(archive, study[0], "&mode=patient&lang=zh-CN"))
    assert page.is_visible("#patient-notice") and page.inner_text("#patient-notice") == "仅供查看，不作诊断依据"
    notice, image = page.locator("#patient-notice").bounding_box(), page.locator(".viewport").bounding_box()
    assert notice["y"] + notice["height"] <= image["y"] and notice["x"] + notice["width"] <= 390  # over no corner text
    for present in ("#tool-wl", "#tool-zoom", "#tool-scroll", "#cine"):
        assert page.locator(present).count() == 1
    for absent in ("#tool-length", "#tool-angle", "#tool-roi", "#layout", "#invert", "#colormap", "#rotate", "#flip",
                   "#sharpen"):
        assert page.locator(absent).count() == 0
    assert not page.is_visible("#to-list")
    assert not p.errors


def test_a_share_link_opens_in_patient_mode_without_asking(open_page: Any, archive: YunyingServer,
                                                            study: tuple[str, str]) -> None:
    """The portal's links carry no mode=patient: the token's kind decides (issue 13 part 7)."""
    import httpx

    made = httpx.post(archive.http_url + "/api/admin/capability-tokens", headers=archive.headers,
                      json={"studies": [study[0]], "permissions": ["view"], "expires_in": 600})
    assert made.status_code == 201, made.text
    access = httpx.post(archive.http_url + "/api/auth/exchange", json={"token": made.json()["token"]}).json()
    p = open_page(**PHONE)
    page = opened(p.page, f"{archive.http_url}/viewer/?study={study[0]}&lang=en#access_token={access['access_token']}")
    page.wait_for_selector("#patient-notice", state="visible")
    assert page.locator("#tool-wl").count() == 1 and page.locator("#cine").count() == 1
    for absent in ("#tool-length", "#invert", "#rotate", "#layout", "#save", "#export", "#compare"):
        assert page.locator(absent).count() == 0, absent
    page.keyboard.press("i")  # the doctors' key does nothing either
    page.evaluate(SETTLE_JS)
    assert page.evaluate("window.yunyingViewer.active.view.invert") is False
    assert not p.errors, p.errors
    # a doctor's key (the module's API key, a user) keeps every tool
    doctor = opened(open_page(**PHONE).page, url(archive, study[0], "&lang=en"))
    assert doctor.locator("#invert").count() == 1 and not doctor.is_visible("#patient-notice")


def test_a_series_dropped_on_a_viewport_opens_there(open_page: Any, archive: YunyingServer) -> None:
    from pydicom.uid import generate_uid

    from tests.frontends.phantom import ct_slice, stow

    study, first, second = generate_uid(), generate_uid(), generate_uid()
    stow(archive, [ct_slice(i, study, first, 64) for i in range(2)] + [ct_slice(i, study, second, 64) for i in range(3)])
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, "&lang=en"))
    page.wait_for_function("document.querySelectorAll('.series-card').length === 2")
    page.click("#layout")
    page.click("#layout-1x2")  # the second viewport takes the other series
    page.wait_for_function("window.yunyingViewer?.viewports.length === 2 && window.yunyingViewer?.viewports.every(v => v.image)")
    shown = page.evaluate("window.yunyingViewer.viewports.map(v => v.series.series)")
    assert sorted(shown) == sorted([first, second])
    page.drag_and_drop(f".series-card[data-series='{shown[0]}']", ".viewport >> nth=1")
    page.wait_for_function(f"window.yunyingViewer?.viewports[1].series.series === '{shown[0]}'")
    assert page.evaluate("window.yunyingViewer.active === window.yunyingViewer.viewports[1]")
    page.keyboard.press("1")  # the first CT preset (lung) on the active viewport
    page.wait_for_function("document.querySelectorAll('.viewport')[1].innerText.includes('W 1500 L -600')")
    assert "W 1500 L -600" not in page.inner_text(".viewport >> nth=0")
    assert not p.errors


@pytest.mark.parametrize("renderer", ["2d", "webgl2"])
def test_pseudo_colour_maps_the_windowed_value(open_page: Any, archive: YunyingServer, study: tuple[str, str],
                                               renderer: str) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study[0], f"&lang=en&renderer={renderer}"))
    press(page, "#colormap")  # grey -> hot: black, red, yellow, white
    assert page.inner_text("#colormap") == "Colour: hot"
    page.evaluate(SETTLE_JS)
    rgb = page.evaluate(READ_JS.replace(".data[0]", ".data.slice(0, 3).join()"), CENTRES)
    for k in (3, 4, 5):  # greys 97, 134, 170: on the red-to-yellow ramp (0.375-0.75)
        level = round(expected(*HEADER_WINDOW)[k]) / 255
        r, g, b = map(int, rgb[k].split(","))
        assert (r, b) == (255, 0) and abs(g - (level - 0.375) / 0.375 * 255) <= 4, (k, rgb[k])
    assert not p.errors


def test_synchronised_scrolling_follows_the_slice_position(open_page: Any, archive: YunyingServer) -> None:
    from pydicom.uid import generate_uid

    from tests.frontends.phantom import ct_slice, stow

    study, thin, thick, frame = generate_uid(), generate_uid(), generate_uid(), generate_uid()
    stow(archive, [ct_slice(i, study, thin, 64, z_step=1.0, frame_of_reference=frame) for i in range(9)]
         + [ct_slice(i, study, thick, 64, z_step=4.0, frame_of_reference=frame) for i in range(3)])
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, f"&series={thin},{thick}&lang=en"))
    page.click("#layout")
    page.click("#layout-1x2")
    page.wait_for_function("window.yunyingViewer?.viewports.length === 2 && window.yunyingViewer?.viewports.every(v => v.image)")
    page.click("#sync")
    page.locator(".viewport").nth(0).click()
    page.keyboard.press("End")  # the thin series to z = -8 mm: the thick one to its slice at -8
    page.wait_for_function("window.yunyingViewer?.viewports[1].index === 2")
    page.keyboard.press("Home")
    for _ in range(5):
        page.keyboard.press("ArrowDown")  # z = -5 mm: nearest thick slice is -4 mm (index 1)
    page.wait_for_function("window.yunyingViewer?.viewports[0].index === 5 && window.yunyingViewer?.viewports[1].index === 1")
    page.click("#sync")  # off: the other viewport stays
    page.keyboard.press("Home")
    page.wait_for_timeout(200)
    assert page.evaluate("window.yunyingViewer.viewports[1].index") == 1
    assert not p.errors


def test_lossy_switch_small_jpegs_then_the_original_pixels(open_page: Any, archive: YunyingServer,
                                                          study: tuple[str, str]) -> None:
    p = open_page(**PHONE)
    raw: list[str] = []
    p.page.on("request", lambda r: raw.append(r.url) if re.search(r"/frames/\d+$", r.url) else None)
    p.page.goto(url(archive, study[0], "&lang=en&quality=lossy"))
    p.page.wait_for_function("window.yunyingViewer?.viewports[0]?.image?.lossy === true", timeout=30000)
    page = p.page
    assert page.inner_text("#quality") == "Lossy (fast)"
    assert_close(pixels(page), expected(*HEADER_WINDOW), tolerance=3)  # JPEG quality 80 on flat stripes
    page.evaluate("window.yunyingViewer.viewports[0].setWindow(-600, 400)")  # inside the JPEG's window: W/L still works
    assert_close(pixels(page), expected(-600, 400), tolerance=4)
    assert not raw and page.evaluate("performance.getEntriesByName('full-fidelity').length") == 0
    press(page, "#quality")  # lossless: the original pixels replace the JPEG
    page.wait_for_function("performance.getEntriesByName('full-fidelity').length > 0", timeout=30000)
    assert page.inner_text("#quality") == "Lossless" and raw
    assert_close(pixels(page), expected(-600, 400))
    assert not p.errors, p.errors


def test_the_first_preview_keeps_the_image_shape_before_its_attributes_arrive(open_page: Any, archive: YunyingServer) -> None:
    """The rendered preview is the first thing shown (early.js sends for it before the rest of the
    viewer has loaded); until the image's attributes arrive it is fitted to the viewport with its
    own proportions: a 2:1 image must not show stretched into a square."""
    import io

    import numpy as np
    import pydicom
    from PIL import Image
    from pydicom.uid import generate_uid

    from tests.frontends.phantom import ct_slice, stow

    study, series = generate_uid(), generate_uid()
    ds = pydicom.dcmread(io.BytesIO(ct_slice(0, study, series, 64)))
    ds.Rows, ds.Columns = 100, 200
    ds.PixelData = np.full((100, 200), 3000, dtype=np.int16).tobytes()  # above the window: white
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    stow(archive, [out.getvalue()])
    p = open_page(**PHONE)
    # the image's attributes (the first instance's QIDO row, the series metadata) never come
    p.page.route(re.compile(r"/(metadata|instances\?)"), lambda route: None)
    p.page.goto(url(archive, study, "&lang=en"))
    p.page.wait_for_function("performance.getEntriesByName('first-image').length > 0", timeout=30000)
    p.page.evaluate(SETTLE_JS)
    shot = np.asarray(Image.open(io.BytesIO(p.page.locator(".viewport").screenshot())).convert("L"))
    rows, cols = np.nonzero(shot > 200)
    assert rows.size, "the preview is not shown"
    width, height = cols.max() - cols.min() + 1, rows.max() - rows.min() + 1
    assert abs(width / height - 2.0) < 0.1, (width, height)
    assert width >= shot.shape[1] - 4  # fitted: as wide as the viewport
    assert not p.errors


def test_before_the_rest_of_the_viewer_loads_the_preview_and_the_asked_language_show(
        open_page: Any, archive: YunyingServer, study: tuple[str, str]) -> None:
    """On a slow link early.js shows the first preview before main.js has arrived; the header
    above it already speaks the language asked for (not the page's built-in Chinese)."""
    import json
    from pathlib import Path

    en = json.loads((Path(__file__).resolve().parents[2] / "frontends/i18n/en.json").read_text())
    p = open_page(**PHONE)
    p.page.route(re.compile(r"/viewer/main\.js$"), lambda route: None)  # the rest of the viewer never comes
    p.page.goto(url(archive, study[0], "&lang=en"))
    p.page.wait_for_function("performance.getEntriesByName('first-image').length > 0", timeout=30000)
    p.page.wait_for_function(f"document.querySelector('#to-list').textContent === {json.dumps(en['viewer.studyList'])}")
    assert p.page.evaluate("document.documentElement.lang") == "en"
    assert p.page.is_visible(".viewport img.preview") and p.page.evaluate("window.yunyingViewer") is None
