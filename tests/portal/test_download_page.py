"""The portal page's download, made in the background: the patient taps Download, the box shows
the ZIP's progress (files done of all), then its size, validity, password and the save button;
the saved ZIP holds a DICOMDIR naming every DICOM member. Chromium at 390x844, zh-CN."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pyzipper
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.frontends.conftest import PHONE as PHONE_CONTEXT
from tests.portal.conftest import issue
from tests.portal.test_portal_page import verify_by_sms


def test_the_page_shows_the_zips_progress_then_saves_it(open_page: Any, srv: YunyingServer, tmp_path: Path) -> None:
    study, series, phone = generate_uid(), generate_uid(), "13500000031"
    sent = [make_ct(study, series, number=i, rows=16, cols=16) for i in range(1, 6)]
    body, ctype = multipart(*[part10(ds) for ds in sent])
    assert httpx.post(srv.dicomweb_url + "/studies", content=body,
                      headers={"Content-Type": ctype, **srv.headers}).status_code == 200
    url = issue(srv, study=study, phone=phone).json()["url"]
    p = open_page(**PHONE_CONTEXT, locale="zh-CN", accept_downloads=True)
    page = p.page
    verify_by_sms(page, srv, url, phone)
    page.tap(".exam .download")
    page.wait_for_selector(".zip .zip-password")
    # contents "both": each instance once as DICOM, once as JPEG
    assert page.evaluate("[document.querySelector('.zip-progress').value, document.querySelector('.zip-progress').max]") == [10, 10]
    assert "有效期至" in page.inner_text(".zip-info")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    password = page.inner_text(".zip-password")
    with page.expect_download() as download:
        page.tap(".zip-save")
    saved = tmp_path / "exam.zip"
    download.value.save_as(saved)
    with pyzipper.AESZipFile(saved) as z:
        z.setpassword(password.encode())
        records = pydicom.dcmread(io.BytesIO(z.read("DICOM/DICOMDIR"))).DirectoryRecordSequence
        named = {"DICOM/" + "/".join(r.ReferencedFileID) for r in records if r.DirectoryRecordType == "IMAGE"}
        assert named == {n for n in z.namelist() if n.startswith("DICOM/")} - {"DICOM/DICOMDIR"}
        assert len(named) == len(sent)
    assert not p.errors, p.errors
