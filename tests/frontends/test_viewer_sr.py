"""Measurements saved to the archive as a DICOM SR measurement report (TID 1500) and drawn again:
the viewer in Debian's Chromium draws, saves (its route builds the SR, STOW-RS stores it), QIDO-RS
finds the SR, dciodvfy (dicom3tools) accepts it, and a reload draws the same marks."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, PHONE, missing_tool, press
from tests.frontends.phantom import SPACING, store_ct
from tests.frontends.test_viewer import drag_image, opened, url

ROUTE = "/api/viewer/sr"


@pytest.fixture(scope="module")
def study(archive: YunyingServer) -> tuple[str, str]:
    return store_ct(archive, 3, 256)


def sr_instances(server: YunyingServer, study: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.dicomweb_url}/studies/{study}/instances", params={"Modality": "SR"}, headers=server.headers)
    assert r.status_code in (200, 204), r.text
    return r.json() if r.status_code == 200 else []


def saved(page: Any) -> None:
    press(page, "#save")
    page.wait_for_function("document.querySelector('#status').innerText.includes('saved to the archive')", timeout=30000)


def marks(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("svg.marks .measure text", "ts => ts.map(t => t.textContent)"))


def test_a_length_saved_is_found_by_qido_valid_and_drawn_after_reload(
        open_page: Any, archive: YunyingServer, study: tuple[str, str], tmp_path: Path) -> None:
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study[0], "&lang=en"))
    press(page, "#tool-length")
    drag_image(page, (16, 128), (208, 128))  # 192 pixels of 0.5 mm
    press(page, "#tool-roi")
    drag_image(page, (100, 100), (124, 140))  # inside stripe 3
    before = marks(page)
    assert float(before[0].split()[0]) == pytest.approx(192 * SPACING, rel=0.01)
    saved(page)

    found = sr_instances(archive, study[0])  # QIDO-RS: the study's SR
    assert len(found) == 1 and found[0]["00080060"]["Value"] == ["SR"]
    series, sop = found[0]["0020000E"]["Value"][0], found[0]["00080018"]["Value"][0]
    got = httpx.get(f"{archive.dicomweb_url}/studies/{study[0]}/series/{series}/instances/{sop}",
                    headers={**archive.headers, "Accept": 'multipart/related; type="application/dicom"'})
    boundary = got.headers["content-type"].split("boundary=")[1].split(";")[0].strip('"').encode()
    part = got.content.split(b"--" + boundary)[1].split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")
    sr = pydicom.dcmread(pydicom.filebase.DicomBytesIO(part))
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert str(sr.PatientName) == "Wang^Xiaodong=王^小东" and sr.StudyInstanceUID == study[0]
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    if shutil.which("dciodvfy") is None:
        missing_tool("dciodvfy (dicom3tools) is not installed")
    checked = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60, check=False)
    errors = [line for line in (checked.stdout + checked.stderr).splitlines() if line.startswith("Error")]
    assert not errors, checked.stdout + checked.stderr

    page.reload()  # the same marks, read back from the archive
    page.wait_for_function("performance.getEntriesByName('full-fidelity').length > 0", timeout=30000)
    page.wait_for_function("document.querySelectorAll('svg.marks .measure').length === 2", timeout=30000)
    assert marks(page) == before
    assert page.locator(".series-card").count() == 1  # the SR series is not an image series
    assert not p.errors, p.errors


def test_saving_again_keeps_the_newest_report(open_page: Any, archive: YunyingServer) -> None:
    study = store_ct(archive, 2, 64)[0]
    p = open_page(**PHONE, locale="zh-CN")
    page = opened(p.page, url(archive, study))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    press(page, "#tool-length")
    drag_image(page, (8, 32), (40, 32))
    press(page, "#save")
    page.wait_for_function("document.querySelector('#status').innerText.includes('测量已保存')", timeout=30000)
    press(page, "#tool-angle")
    drag_image(page, (50, 32), (32, 32))
    drag_image(page, (32, 32), (32, 10))
    press(page, "#save")
    page.wait_for_function("document.querySelector('#status').innerText.includes('测量已保存')", timeout=30000)
    assert len(sr_instances(archive, study)) == 2
    page.reload()
    page.wait_for_function("document.querySelectorAll('svg.marks .measure').length === 2", timeout=30000)
    kinds = page.eval_on_selector_all("svg.marks .measure", "gs => gs.map(g => g.getAttribute('class'))")
    assert sorted(kinds) == ["measure angle", "measure length"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not p.errors, p.errors


def test_patient_mode_has_no_save(open_page: Any, archive: YunyingServer, study: tuple[str, str]) -> None:
    p = open_page(**PHONE)
    page = opened(p.page, url(archive, study[0], "&mode=patient&lang=en"))
    assert page.locator("#save").count() == 0
    assert not p.errors


def body(sop: str = "1.2.3", **item: Any) -> dict[str, Any]:
    image = {"00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]}, "0020000D": {"vr": "UI", "Value": ["1.2"]},
             "0020000E": {"vr": "UI", "Value": ["1.2.1"]}, "00080060": {"vr": "CS", "Value": ["CT"]}}
    mark = {"kind": "length", "sop": sop, "frame": 1, "points": [[0, 0], [10, 0]], "value": 5.0, "unit": "mm", **item}
    return {"images": {sop: image}, "measurements": [mark]}


def post(server: YunyingServer, content: bytes, ctype: str = "application/json") -> httpx.Response:
    return httpx.post(server.http_url + ROUTE, content=content, headers={**server.headers, "Content-Type": ctype})


def test_the_route_builds_an_sr_and_refuses_bad_input(archive: YunyingServer) -> None:
    good = post(archive, json.dumps(body()).encode())
    assert good.status_code == 200 and good.headers["content-type"] == "application/dicom"
    assert pydicom.dcmread(pydicom.filebase.DicomBytesIO(good.content)).Modality == "SR"
    other = body() | {"measurements": [body()["measurements"][0] | {"sop": "4.4"}]}
    for bad, reason in [(body(kind="spline"), "kind"), (body(points=[[0, 0]]), "points"),
                        (body(points=[[0, "x"], [1, 1]]), "points"), (body(points=[[1e39, 0], [1, 1]]), "points"), (body(value=float("inf")), "value"),
                        (other, "sop"), ({"images": {}, "measurements": []}, "images"), ([1, 2], "object"),
                        (body(frame=0), "frame"), (body() | {"measurements": [{}] * 501}, "measurements"),
                        (body(kind="freehand", points=[[0, 0], [1, 1]]), "3 to 2000"),
                        (body(kind="freehand", points=[[0, 0]] * 2001), "3 to 2000")]:
        r = post(archive, json.dumps(bad).encode())  # Infinity too: Python's json writes it
        assert r.status_code == 400 and r.json()["status"] == 400 and reason in r.json()["error"], (bad, r.text)
    assert post(archive, b"{not json").status_code == 400
    assert post(archive, b"{}", "text/plain").status_code == 415
    assert post(archive, b"[" + b"1," * (3 << 20) + b"1]").status_code == 413
    assert not sr_instances(archive, "1.2")  # the route stores nothing itself


def test_the_route_refuses_without_a_token_or_the_write_permission(archive: YunyingServer, study: tuple[str, str]) -> None:
    assert httpx.post(archive.http_url + ROUTE, json=body()).status_code == 401
    made = httpx.post(archive.http_url + "/api/admin/capability-tokens", headers=archive.headers,
                      json={"studies": [study[0]], "permissions": ["view"], "expires_in": 600})
    assert made.status_code == 201, made.text
    access = httpx.post(archive.http_url + "/api/auth/exchange", json={"token": made.json()["token"]}).json()
    viewer_only = {"Authorization": f"Bearer {access['access_token']}"}
    assert httpx.post(archive.http_url + ROUTE, json=body(), headers=viewer_only).status_code == 403


def test_a_reader_without_write_permission_is_told_and_nothing_is_stored(
        open_page: Any, archive: YunyingServer) -> None:
    study = store_ct(archive, 1, 64)[0]
    made = httpx.post(f"{archive.http_url}/api/admin/api-keys", json={"name": "sr-reader", "scopes": ["dicomweb.read"]},
                      headers=archive.headers)
    assert made.status_code == 201, made.text
    p = open_page(**DESKTOP)
    address = f"{archive.http_url}/viewer/?study={study}&lang=en#access_token={made.json()['key']}"
    page = opened(p.page, address)
    press(page, "#save")  # nothing drawn yet
    page.wait_for_function("document.querySelector('#status').innerText.includes('No measurements')")
    press(page, "#tool-length")
    drag_image(page, (8, 32), (40, 32))
    press(page, "#save")
    page.wait_for_function("document.querySelector('#status').innerText.includes('could not be saved')", timeout=30000)
    assert not sr_instances(archive, study)
    assert [f for f in p.failed if "/api/viewer/sr" in f] == [f"403 POST {archive.http_url}/api/viewer/sr"]


def test_the_routers_python_files_are_not_served_as_pages(archive: YunyingServer) -> None:
    for path in ("/viewer/routes.py", "/viewer/report.py", "/viewer/__init__.py", "/viewer/__pycache__/report.cpython-311.pyc"):
        assert httpx.get(archive.http_url + path).status_code == 404, path
    assert httpx.get(archive.http_url + "/viewer/sr.js").status_code == 200  # the page's own module is
