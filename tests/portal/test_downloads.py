"""Downloads: the exam as an AES ZIP that opens only with its password and holds the study
(dataset-equal) with a DICOMDIR; other patients and expired downloads get 404."""
from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import httpx
import pydicom
import pytest
import pyzipper
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.portal.conftest import api, issue, last_code
from tests.portal.test_shares_api import signed_in


def patient_of(srv: YunyingServer, study: str, phone: str) -> dict[str, str]:
    token = issue(srv, study=study, phone=phone).json()["token"]
    api(srv, "verify/send", {"exam": token, "phone": phone})
    session = api(srv, "verify/sms", {"exam": token, "phone": phone, "code": last_code(srv, phone)}).json()
    return {"Authorization": f"Bearer {session['access_token']}"}


def test_zip_opens_only_with_its_password_and_holds_the_study(srv: YunyingServer) -> None:
    study, series = generate_uid(), generate_uid()
    sent = [make_ct(study, series, number=i, name="Zhang^San", ideographic="张三", charset="ISO_IR 192")
            for i in range(1, 4)]
    body, ctype = multipart(*[part10(ds) for ds in sent])
    assert httpx.post(srv.dicomweb_url + "/studies", content=body,
                      headers={"Content-Type": ctype, **srv.headers}).status_code == 200
    patient = patient_of(srv, study, "13100000001")
    made = httpx.post(srv.http_url + "/api/portal/downloads", json={"study": study}, headers=patient, timeout=60)
    assert made.status_code == 201, made.text
    got = made.json()
    assert len(got["password"]) == 12 and got["size"] > 0 and got["expires_at"] > 0
    z = httpx.get(f"{srv.http_url}/api/portal/downloads/{got['id']}", headers=patient)
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip" and len(z.content) == got["size"]

    with pyzipper.AESZipFile(io.BytesIO(z.content)) as archive:
        names = archive.namelist()
        assert "DICOM/DICOMDIR" in names
        with pytest.raises(RuntimeError):
            archive.read(names[-1], pwd=b"not-the-password")
        archive.setpassword(got["password"].encode())
        files = {n: pydicom.dcmread(io.BytesIO(archive.read(n))) for n in names if n != "DICOM/DICOMDIR"}
        dicomdir = pydicom.dcmread(io.BytesIO(archive.read("DICOM/DICOMDIR")))
    by_uid = {ds.SOPInstanceUID: ds for ds in files.values()}
    assert len(by_uid) == 3
    for original in sent:
        back = by_uid[original.SOPInstanceUID]
        assert back == pydicom.dcmread(io.BytesIO(part10(original)))  # every element, pixels included
    images = [r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    assert len(images) == 3

    _, stranger = signed_in(srv, "13100000002")
    assert httpx.get(f"{srv.http_url}/api/portal/downloads/{got['id']}", headers=stranger).status_code == 404
    assert httpx.post(srv.http_url + "/api/portal/downloads", json={"study": study},
                      headers=stranger).status_code == 404
    with sqlite3.connect(Path(srv.data_dir) / "app.sqlite") as db:  # a day passes
        db.execute("UPDATE portal_downloads SET expires_at = 1000")
    assert httpx.get(f"{srv.http_url}/api/portal/downloads/{got['id']}", headers=patient).status_code == 404


def test_zip_of_jpegs_for_viewing_without_dicom_software(srv: YunyingServer) -> None:
    from PIL import Image

    study, series = generate_uid(), generate_uid()
    sent = [make_ct(study, series, number=i, rows=32, cols=48) for i in range(1, 3)]
    body, ctype = multipart(*[part10(ds) for ds in sent])
    assert httpx.post(srv.dicomweb_url + "/studies", content=body,
                      headers={"Content-Type": ctype, **srv.headers}).status_code == 200
    patient = patient_of(srv, study, "13100000003")

    def contents(kind: str) -> list[str]:
        made = httpx.post(srv.http_url + "/api/portal/downloads", json={"study": study, "contents": kind},
                          headers=patient, timeout=60)
        assert made.status_code == 201, made.text
        z = httpx.get(f"{srv.http_url}/api/portal/downloads/{made.json()['id']}", headers=patient)
        with pyzipper.AESZipFile(io.BytesIO(z.content)) as archive:
            archive.setpassword(made.json()["password"].encode())
            names = sorted(archive.namelist())
            for name in names:
                if name.endswith(".jpg"):
                    image = Image.open(io.BytesIO(archive.read(name)))
                    assert image.format == "JPEG" and image.size == (48, 32)
        return names

    assert contents("jpeg") == ["JPEG/001-0001-00001.jpg", "JPEG/001-0002-00002.jpg"]
    both = contents("both")
    assert "DICOM/DICOMDIR" in both and len([n for n in both if n.startswith("JPEG/")]) == 2
    bad = httpx.post(srv.http_url + "/api/portal/downloads", json={"study": study, "contents": "png"}, headers=patient)
    assert bad.status_code == 400 and "contents" in bad.json()["error"]
