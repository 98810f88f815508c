"""Downloads: the exam as an AES ZIP that opens only with its password and holds the study
(dataset-equal) with a DICOMDIR; other patients and expired downloads get 404."""
from __future__ import annotations

import io
import os
import sqlite3
import time
from pathlib import Path

import httpx
import pydicom
import pytest
import pyzipper
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.portal.conftest import api, issue, last_code, store_study
from tests.portal.test_shares_api import signed_in
from yunying.portal import downloads


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


def unzip(srv: YunyingServer, made: dict, patient: dict[str, str], into: Path) -> set[str]:
    """Extract the ZIP of `made` into `into`; answers its member names."""
    z = httpx.get(f"{srv.http_url}/api/portal/downloads/{made['id']}", headers=patient, timeout=60)
    assert z.status_code == 200, z.text
    with pyzipper.AESZipFile(io.BytesIO(z.content)) as archive:
        archive.setpassword(made["password"].encode())
        archive.extractall(into)
        return set(archive.namelist())


def multi_series_study(srv: YunyingServer) -> tuple[str, dict[str, str]]:
    """A stored study of three series (two CT, one MR): (its UID, SOP Instance UID -> series UID)."""
    study, sent = generate_uid(), []
    for modality, count in (("CT", 4), ("CT", 3), ("MR", 2)):
        series = generate_uid()
        sent += [make_ct(study, series, number=i, modality=modality) for i in range(1, count + 1)]
    body, ctype = multipart(*[part10(ds) for ds in sent])
    assert httpx.post(srv.dicomweb_url + "/studies", content=body,
                      headers={"Content-Type": ctype, **srv.headers}).status_code == 200
    return study, {str(ds.SOPInstanceUID): str(ds.SeriesInstanceUID) for ds in sent}


def check_dicomdir(root: Path, members: set[str], sent: dict[str, str]) -> None:
    """The DICOMDIR references exactly the members, each at the instance it holds, series by series."""
    from pydicom.fileset import FileSet

    fs = FileSet(pydicom.dcmread(root / "DICOM" / "DICOMDIR"))
    named = {"DICOM/" + Path(i.FileID).as_posix(): str(i.SOPInstanceUID) for i in fs}
    assert set(named) == members - {"DICOM/DICOMDIR"} and sorted(named.values()) == sorted(sent)
    for name, uid in named.items():
        back = pydicom.dcmread(root / name, stop_before_pixels=True)
        assert str(back.SOPInstanceUID) == uid and str(back.SeriesInstanceUID) == sent[uid]
    folders = {name.rsplit("/", 1)[0] for name in named}
    assert len(folders) == 3  # one folder per series


def test_a_multi_series_study_zips_with_a_dicomdir_of_exactly_its_members(srv: YunyingServer, tmp_path: Path) -> None:
    study, sent = multi_series_study(srv)
    patient = patient_of(srv, study, "13100000021")
    made = httpx.post(srv.http_url + "/api/portal/downloads", json={"study": study}, headers=patient, timeout=60)
    assert made.status_code == 201, made.text  # small: made within the request, as before
    members = unzip(srv, made.json(), patient, tmp_path)
    check_dicomdir(tmp_path, members, sent)


def test_a_download_made_in_the_background_reports_progress(srv: YunyingServer, tmp_path: Path) -> None:
    study, sent = multi_series_study(srv)
    patient = patient_of(srv, study, "13100000022")
    started = httpx.post(srv.http_url + "/api/portal/downloads", json={"study": study, "background": True},
                         headers=patient, timeout=60)
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["state"] in ("queued", "running", "ready") and job["total"] == len(sent) and len(job["password"]) == 12
    progress = f"{srv.http_url}/api/portal/downloads/{job['id']}/progress"
    for _ in range(600):
        state = httpx.get(progress, headers=patient).json()
        if state["state"] not in ("queued", "running"):
            break
        assert 0 <= state["done"] <= state["total"]
        time.sleep(0.1)
    assert state["state"] == "ready" and state["done"] == state["total"] == len(sent), state
    assert state["size"] > 0 and state["expires_at"] > time.time()
    members = unzip(srv, job, patient, tmp_path)
    check_dicomdir(tmp_path, members, sent)

    assert httpx.get(progress).status_code == 401
    _, stranger = signed_in(srv, "13100000023")
    assert httpx.get(progress, headers=stranger).status_code == 404
    assert httpx.get(f"{srv.http_url}/api/portal/downloads/d_unknown/progress", headers=patient).status_code == 404
    bad = httpx.post(srv.http_url + "/api/portal/downloads", json={"study": study, "background": "yes"}, headers=patient)
    assert bad.status_code == 400 and "background" in bad.json()["error"]


def test_what_a_dead_build_left_is_swept_and_a_live_build_is_not(srv: YunyingServer, tmp_path: Path) -> None:
    """A server killed mid-build leaves a `.part`, a staging folder or an unrecorded ZIP: the
    patient's images on disk with no row to expire them. The next download removes them once
    untouched for STALE seconds; what a running build writes (fresh) stays."""
    folder = srv.data_dir / downloads.FOLDER
    folder.mkdir(exist_ok=True)
    dead = [folder / "d_dead.part", folder / "d_dead_unrecorded.zip", folder / "tmpdead"]
    dead[0].write_bytes(b"PK half")
    dead[1].write_bytes(b"PK whole")
    dead[2].mkdir()
    (dead[2] / "header.dcm").write_bytes(b"DICM")
    live = folder / "d_live.part"
    live.write_bytes(b"PK being written")
    old = time.time() - downloads.STALE - 60
    for path in dead:
        os.utime(path, (old, old))

    study = store_study(srv)
    patient = patient_of(srv, study, "13100000031")
    made = httpx.post(srv.http_url + "/api/portal/downloads", json={"study": study}, headers=patient, timeout=60)
    assert made.status_code == 201, made.text
    assert [p.name for p in dead if p.exists()] == []
    assert live.exists() and (folder / f"{made.json()['id']}.zip").exists()
    live.unlink()
