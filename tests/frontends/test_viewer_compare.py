"""Reference lines between viewports (an axial and a sagittal series in one frame of reference)
and compare mode with the patient's prior exam, in Debian's Chromium against a real archive."""
from __future__ import annotations

import io
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, PHONE, press
from tests.frontends.phantom import ct_slice, store_ct, stow
from tests.frontends.test_viewer import SETTLE_JS, corner, opened, url

LINE_JS = """(k) => [...document.querySelectorAll('.viewport')[k].querySelectorAll('svg.refs line')].map(l => {
  const vp = window.yunyingViewer.viewports[k], n = (a) => Number(l.getAttribute(a));
  return [...vp.clientToImage(n('x1'), n('y1')), ...vp.clientToImage(n('x2'), n('y2'))]; })"""


def sagittal(i: int, study: str, series: str, frame: str) -> bytes:
    """A sagittal slice at x = 10 + i mm: columns along +y, rows down along -z, 0.5 mm pixels."""
    ds = pydicom.dcmread(io.BytesIO(ct_slice(i, study, series, 64, frame_of_reference=frame)))
    ds.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
    ds.ImagePositionPatient = [10.0 + i, 0.0, 0.0]
    ds.SliceLocation = 10.0 + i
    ds.SeriesNumber, ds.SeriesDescription = 3, "SAG"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_reference_lines_show_where_the_other_plane_cuts(open_page: Any, archive: YunyingServer) -> None:
    study, axial, sag, frame = generate_uid(), generate_uid(), generate_uid(), generate_uid()
    stow(archive, [ct_slice(i, study, axial, 64, frame_of_reference=frame) for i in range(5)]  # z = 0, -1 ... -4
         + [sagittal(i, study, sag, frame) for i in range(3)])
    p = open_page(**DESKTOP)
    page = opened(p.page, url(archive, study, f"&series={axial},{sag}&lang=en"))
    assert page.locator(".viewport svg.refs line").count() == 0  # one viewport: nothing to refer to
    page.click("#layout")
    page.click("#layout-1x2")
    page.wait_for_function("window.yunyingViewer?.viewports.length === 2 && window.yunyingViewer?.viewports.every(v => v.image)")
    page.locator(".viewport").nth(0).click()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # axial slice at z = -2 mm: row 4 of the sagittal image (0.5 mm rows)
    page.wait_for_function("window.yunyingViewer?.viewports[0].index === 2")
    page.evaluate(SETTLE_JS)
    [on_sagittal] = page.evaluate(LINE_JS, 1)
    x1, y1, x2, y2 = on_sagittal
    assert (y1, y2) == (pytest.approx(4.5, abs=0.05), pytest.approx(4.5, abs=0.05))
    assert sorted([x1, x2]) == [pytest.approx(0, abs=0.05), pytest.approx(64, abs=0.05)]
    [on_axial] = page.evaluate(LINE_JS, 0)  # the sagittal plane x = 10 mm: column 20
    x1, y1, x2, y2 = on_axial
    assert (x1, x2) == (pytest.approx(20.5, abs=0.05), pytest.approx(20.5, abs=0.05))
    assert sorted([y1, y2]) == [pytest.approx(0, abs=0.05), pytest.approx(64, abs=0.05)]
    page.locator(".viewport").nth(1).click()
    page.keyboard.press("End")  # sagittal at x = 12 mm: column 24
    page.wait_for_function("window.yunyingViewer?.viewports[1].index === 2")
    page.evaluate(SETTLE_JS)
    assert page.evaluate(LINE_JS, 0)[0][0] == pytest.approx(24.5, abs=0.05)
    assert not p.errors, p.errors


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_compare_opens_the_prior_exam_beside(open_page: Any, archive: YunyingServer, device: str) -> None:
    pid = f"P-CMP-{device}"
    current = store_ct(archive, 2, 64, patient_id=pid, study_date="20240301")[0]
    prior = store_ct(archive, 2, 64, patient_id=pid, study_date="20230115")[0]
    store_ct(archive, 1, 64, patient_id=pid + "-other", study_date="20220101")  # another patient
    p = open_page(**(DESKTOP if device == "desktop" else PHONE), locale="en-US")
    page = opened(p.page, url(archive, current))
    press(page, "#compare")
    page.wait_for_selector("#priors .prior")
    entries = page.eval_on_selector_all("#priors .prior", "bs => bs.map(b => [b.dataset.study, b.textContent])")
    assert [e[0] for e in entries] == [prior] and entries[0][1].startswith("2023-01-15")
    page.click("#priors .prior")
    page.wait_for_function(f"window.yunyingViewer?.viewports.length === 2 && window.yunyingViewer?.viewports[1].series?.study === '{prior}'"
                           " && window.yunyingViewer.viewports[1].image !== null")
    assert "2023-01-15" in page.inner_text(".viewport >> nth=1") and "2024-03-01" in corner(page, "tr")
    boxes = [page.locator(".viewport").nth(i).bounding_box() for i in range(2)]
    beside = boxes[1]["x"] > boxes[0]["x"] + boxes[0]["width"] / 2
    assert beside == (device == "desktop")  # a portrait phone: one above the other
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not p.errors, p.errors
