"""Export from the viewer in Debian's Chromium: the viewport as JPEG, images at their own size
through the window as PNG / JPEG (several in a ZIP), the series as an MP4 cine (decoded back with
PyAV); the packaging route refuses bad uploads and callers without the permission."""
from __future__ import annotations

import io
import zipfile
from typing import Any

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, PHONE, press
from tests.frontends.phantom import (
    HEADER_WINDOW,
    INTERCEPT,
    STRIPES,
    grey,
    hu,
    store_ct,
    stored_pixels,
)
from tests.frontends.test_viewer import SETTLE_JS, drag_image, opened, url

SIZE, SLICES = 128, 3
XS = [SIZE // STRIPES * k + SIZE // STRIPES // 2 for k in range(STRIPES)]  # stripe centres


@pytest.fixture(scope="module")
def study(archive: YunyingServer) -> str:
    return store_ct(archive, SLICES, SIZE, marker=True)[0]


def saved(page: Any, button: str) -> bytes:
    with page.expect_download(timeout=60000) as done:
        press(page, button)
    return open(done.value.path(), "rb").read()


def lum(img: Image.Image, x: int, y: int) -> int:
    v = img.convert("L").getpixel((x, y))
    assert isinstance(v, (int, float))
    return int(v)


def greys(img: Image.Image, y: int = SIZE // 2) -> list[int]:
    return [lum(img, x, y) for x in XS]


def near(seen: list[int], slice_index: int, tolerance: float) -> bool:
    return all(abs(s - grey(hu(k, slice_index), *HEADER_WINDOW)) <= tolerance for k, s in enumerate(seen))


def test_exports_viewport_images_zip_and_mp4(open_page: Any, archive: YunyingServer, study: str) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, "&lang=en"))
    page.wait_for_function(f"window.yunyingViewer?.loader.fetched === {SLICES}")
    press(page, "#tool-length")
    drag_image(page, (10, 20), (110, 20))
    press(page, "#export")
    shot = Image.open(io.BytesIO(saved(page, "#export-shot")))
    canvas = page.evaluate("[window.yunyingViewer.viewports[0].canvas.width, window.yunyingViewer.viewports[0].canvas.height]")
    assert shot.format == "JPEG" and list(shot.size) == canvas
    at = page.evaluate(f"window.yunyingViewer.viewports[0].imageToClient({XS[3]}, {SIZE // 2})")
    assert abs(lum(shot, int(at[0]), int(at[1])) - grey(hu(3, 0), *HEADER_WINDOW)) <= 4
    on_line = page.evaluate("window.yunyingViewer.viewports[0].imageToClient(60, 20)")
    rgb = shot.convert("RGB").getpixel((int(on_line[0]), int(on_line[1])))  # the length's yellow line is in the picture
    assert isinstance(rgb, tuple)
    r, g, b = rgb[:3]
    assert r > 200 and g > 170 and r - b > 80, (r, g, b)

    press(page, "#export")
    png = Image.open(io.BytesIO(saved(page, "#export-png")))  # image 1 alone, at its own size
    assert png.format == "PNG" and png.size == (SIZE, SIZE) and near(greys(png), 0, 1)

    press(page, "#export")
    page.fill("#export-from", "1")
    page.fill("#export-to", str(SLICES))
    with zipfile.ZipFile(io.BytesIO(saved(page, "#export-jpeg"))) as z:
        names = z.namelist()
        assert names == [f"CT-2-{i}.jpg" for i in range(1, SLICES + 1)]
        third = Image.open(io.BytesIO(z.read(names[2])))
    assert third.format == "JPEG" and near(greys(third), 2, 3)

    press(page, "#export")
    movie = av.open(io.BytesIO(saved(page, "#export-mp4")), mode="r")
    stream = movie.streams.video[0]
    frames = [f.to_image() for f in movie.decode(stream)]
    assert len(frames) == SLICES and frames[0].size == (SIZE, SIZE) and stream.codec_context.name == "h264"
    assert stream.average_rate == page.evaluate("window.yunyingViewer.cine.fps")
    assert near(greys(frames[2]), 2, 6)  # H.264 at crf 18: within a few grey levels
    assert not p.errors, p.errors


def test_phone_export_menu_fits(open_page: Any, archive: YunyingServer, study: str) -> None:
    p = open_page(**PHONE, locale="zh-CN")
    page = opened(p.page, url(archive, study))
    press(page, "#export")
    assert page.inner_text("#export-mp4") == "序列电影（MP4）"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    menu = page.locator("#exports").bounding_box()
    assert menu["x"] >= 0 and menu["x"] + menu["width"] <= 390
    assert not p.errors, p.errors


def form(server: YunyingServer, kind: str, files: list[tuple[str, bytes]], headers: dict[str, str] | None = None,
         data: dict[str, str] | None = None) -> httpx.Response:
    data = data or {}
    return httpx.post(f"{server.http_url}/api/viewer/export/{kind}", headers=server.headers if headers is None else headers,
                      files=[("image", (n, b)) for n, b in files] + [(k, (None, v)) for k, v in data.items()], timeout=60)


def png_bytes(size: tuple[int, int] = (8, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size).save(out, "PNG")
    return out.getvalue()


def test_the_export_route_refuses_bad_uploads(archive: YunyingServer) -> None:
    assert form(archive, "zip", [("a.png", png_bytes())]).status_code == 200
    for kind, files, data, reason in [
        ("zip", [("a.png", b"not an image")], {}, "readable"),
        ("zip", [("../a.png", png_bytes())], {}, "file name"),
        ("zip", [("a.png", png_bytes()), ("a.png", png_bytes())], {}, "unique"),
        ("zip", [("a.gif", png_bytes())], {}, "file name"),
        ("mp4", [("a.png", png_bytes())], {"fps": "1000"}, "fps"),
        ("mp4", [("a.png", png_bytes())], {"fps": "fast"}, "fps"),
        ("mp4", [("a.png", png_bytes((5000, 2)))], {}, "pixels"),
        ("mp4", [], {"fps": "10"}, "images"),
    ]:
        r = form(archive, kind, files, data=data)
        assert r.status_code == 400 and reason in r.json()["error"], (kind, data, r.text)
    assert form(archive, "gif", [("a.png", png_bytes())]).status_code == 404
    plain = httpx.post(f"{archive.http_url}/api/viewer/export/zip", content=b"x",
                       headers={**archive.headers, "Content-Type": "application/octet-stream"})
    assert plain.status_code == 415


def api_key(server: YunyingServer, scopes: list[str]) -> dict[str, str]:
    made = httpx.post(f"{server.http_url}/api/admin/api-keys", json={"name": "viewer-" + "-".join(scopes), "scopes": scopes},
                      headers=server.headers)
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}


def test_viewer_routes_refuse_without_a_token_or_the_permission(archive: YunyingServer) -> None:
    files = [("a.png", png_bytes())]
    assert form(archive, "zip", files, headers={}).status_code == 401
    assert form(archive, "zip", files, headers=api_key(archive, ["operations"])).status_code == 403  # no dicomweb.read
    reader = api_key(archive, ["dicomweb.read"])
    assert form(archive, "mp4", files, headers=reader).status_code == 200
    assert httpx.post(f"{archive.http_url}/api/viewer/sr", json={}, headers=reader).status_code == 403  # no dicomweb.write


def test_a_malformed_multipart_body_is_a_400(archive: YunyingServer) -> None:
    r = httpx.post(f"{archive.http_url}/api/viewer/export/zip", content=b"--x\r\nContent-Disposition: form-data\r\n\r\nno end",
                   headers={**archive.headers, "Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400 and r.json()["status"] == 400


# the viewer's "hot" map (colormaps.js): piecewise linear through these (position, R, G, B)
HOT = [(0, 0, 0, 0), (0.375, 255, 0, 0), (0.75, 255, 255, 0), (1, 255, 255, 255)]
SEEN_WINDOW = (-600.0, 500.0)  # the reader's own window, not the header's


def hot(level: np.ndarray) -> np.ndarray:
    x = level / 255.0
    return np.stack([np.interp(x, [p[0] for p in HOT], [p[c] for p in HOT]) for c in (1, 2, 3)], axis=-1)


def as_seen(slice_index: int) -> np.ndarray:
    """Slice `slice_index` as the reader sees it after the clicks below: the reader's window,
    inverted, through the hot map, flipped left-right and then turned 90 degrees clockwise."""
    values = stored_pixels(slice_index, SIZE, marker=True).astype(float) + INTERCEPT
    level = np.rint(255.0 - np.vectorize(grey)(values, *SEEN_WINDOW))
    return np.rot90(np.fliplr(hot(level)), k=-1)


def off(img: Image.Image, slice_index: int) -> float:
    """Mean absolute difference (0..255) of an exported image from what the reader sees."""
    return float(np.abs(np.asarray(img.convert("RGB"), dtype=float) - as_seen(slice_index)).mean())


def test_exports_are_what_the_reader_sees(open_page: Any, archive: YunyingServer, study: str) -> None:
    """Window, invert, colour map, rotation and flip in every export; zoom and pan in the screenshot."""
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, "&lang=en"))
    page.wait_for_function(f"window.yunyingViewer?.loader.fetched === {SLICES}")
    for button in ("#rotate", "#flip", "#invert", "#colormap"):  # hot is the map after grey
        press(page, button)
    page.evaluate(f"window.yunyingViewer.viewports[0].setWindow({SEEN_WINDOW[0]}, {SEEN_WINDOW[1]})")
    page.evaluate("window.yunyingViewer.viewports[0].set({zoom: 1.1, panX: 40, panY: -20})")
    page.evaluate(SETTLE_JS)
    marker = as_seen(0)[SIZE - 16, SIZE - 16]  # the top-left square lands bottom right
    assert off(Image.fromarray(np.uint8(np.rot90(as_seen(0)))), 0) > 40  # the phantom tells orientations apart

    press(page, "#export")
    shot = Image.open(io.BytesIO(saved(page, "#export-shot"))).convert("RGB")
    dpr = page.evaluate("window.devicePixelRatio")
    for x, y in [(16, 16), (16, SIZE - 16), (SIZE - 16, 16), (XS[5], SIZE // 2)]:  # image pixels, marker first
        at = page.evaluate(f"window.yunyingViewer.viewports[0].imageToClient({x + 0.5}, {y + 0.5})")
        seen = shot.getpixel((int(at[0] * dpr), int(at[1] * dpr)))
        assert isinstance(seen, tuple)
        wanted = as_seen(0)[SIZE - 1 - x, SIZE - 1 - y]  # image (x, y) -> row W-1-x, column H-1-y
        assert max(abs(int(s) - w) for s, w in zip(seen, wanted, strict=True)) <= 12, ((x, y), seen, wanted)
    assert (marker == as_seen(0)[SIZE - 1 - 16, SIZE - 1 - 16]).all()

    press(page, "#export")
    png = Image.open(io.BytesIO(saved(page, "#export-png")))
    assert png.size == (SIZE, SIZE) and off(png, 0) < 1.5, off(png, 0)

    press(page, "#export")
    page.fill("#export-from", "1")
    page.fill("#export-to", str(SLICES))
    with zipfile.ZipFile(io.BytesIO(saved(page, "#export-jpeg"))) as z:
        images = [Image.open(io.BytesIO(z.read(n))) for n in z.namelist()]
    assert [round(off(img, i)) <= 3 for i, img in enumerate(images)] == [True] * SLICES, [off(img, i) for i, img in enumerate(images)]

    press(page, "#export")
    movie = av.open(io.BytesIO(saved(page, "#export-mp4")), mode="r")
    frames = [f.to_image() for f in movie.decode(movie.streams.video[0])]
    assert len(frames) == SLICES and [off(f, i) < 8 for i, f in enumerate(frames)] == [True] * SLICES, [off(f, i) for i, f in enumerate(frames)]
    assert not p.errors, p.errors
