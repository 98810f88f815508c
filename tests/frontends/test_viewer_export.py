"""Export from the viewer in Debian's Chromium: the viewport as JPEG, images at their own size
through the window as PNG / JPEG (several in a ZIP), the series as an MP4 cine (decoded back with
PyAV); the packaging route refuses bad uploads and callers without the permission."""
from __future__ import annotations

import io
import zipfile
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, PHONE
from tests.frontends.phantom import HEADER_WINDOW, STRIPES, grey, hu, store_ct
from tests.frontends.test_viewer import opened, url

SIZE, SLICES = 128, 3
XS = [SIZE // STRIPES * k + SIZE // STRIPES // 2 for k in range(STRIPES)]  # stripe centres


@pytest.fixture(scope="module")
def study(archive: YunyingServer) -> str:
    return store_ct(archive, SLICES, SIZE)[0]


def saved(page: Any, button: str) -> bytes:
    with page.expect_download(timeout=60000) as done:
        page.click(button)
    return open(done.value.path(), "rb").read()


def grey_at(img: Image.Image, x: int, y: int) -> int:
    value = img.convert("L").getpixel((x, y))
    assert isinstance(value, int)
    return value


def greys(img: Image.Image, y: int = SIZE // 2) -> list[int]:
    return [grey_at(img, x, y) for x in XS]


def near(seen: list[int], slice_index: int, tolerance: float) -> bool:
    return all(abs(s - grey(hu(k, slice_index), *HEADER_WINDOW)) <= tolerance for k, s in enumerate(seen))


def test_exports_viewport_images_zip_and_mp4(open_page: Any, archive: YunyingServer, study: str) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, "&lang=en"))
    page.wait_for_function(f"window.yunyingViewer.loader.fetched === {SLICES}")
    page.click("#tool-length")
    box = page.locator(".viewport").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 40, steps=3)
    page.mouse.up()
    page.click("#export")
    shot = Image.open(io.BytesIO(saved(page, "#export-shot")))
    canvas = page.evaluate("[window.yunyingViewer.viewports[0].canvas.width, window.yunyingViewer.viewports[0].canvas.height]")
    assert shot.format == "JPEG" and list(shot.size) == canvas
    at = page.evaluate(f"window.yunyingViewer.viewports[0].imageToClient({XS[3]}, {SIZE // 2})")
    assert abs(grey_at(shot, int(at[0]), int(at[1])) - grey(hu(3, 0), *HEADER_WINDOW)) <= 4
    pixel = shot.convert("RGB").getpixel((90, 40))
    assert isinstance(pixel, tuple)
    r, g, b = pixel  # the length's yellow line is in the picture
    assert r > 200 and g > 170 and r - b > 80, (r, g, b)

    page.click("#export")
    png = Image.open(io.BytesIO(saved(page, "#export-png")))  # image 1 alone, at its own size
    assert png.format == "PNG" and png.size == (SIZE, SIZE) and near(greys(png), 0, 1)

    page.click("#export")
    page.fill("#export-from", "1")
    page.fill("#export-to", str(SLICES))
    with zipfile.ZipFile(io.BytesIO(saved(page, "#export-jpeg"))) as z:
        names = z.namelist()
        assert names == [f"CT-2-{i}.jpg" for i in range(1, SLICES + 1)]
        third = Image.open(io.BytesIO(z.read(names[2])))
    assert third.format == "JPEG" and near(greys(third), 2, 3)

    page.click("#export")
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
    page.click("#export")
    assert page.inner_text("#export-mp4") == "序列电影（MP4）"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    menu = page.locator("#exports").bounding_box()
    assert menu["x"] >= 0 and menu["x"] + menu["width"] <= 390
    assert not p.errors, p.errors


def form(server: YunyingServer, kind: str, files: list[tuple[str, bytes]], headers: dict[str, str] | None = None,
         **data: Any) -> httpx.Response:
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
        r = form(archive, kind, files, None, **data)
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
