"""The delivery console's counts match what was stored and delivered (a fresh archive)."""
from __future__ import annotations

import io
import time
from typing import Any

import httpx
import openpyxl
import pydicom
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.portal.conftest import api, issue, last_code
from tests.portal.test_fhir_reports import PDF, post, report


def stow(srv: YunyingServer, *datasets: pydicom.Dataset) -> None:
    body, ctype = multipart(*[part10(ds) for ds in datasets])
    assert httpx.post(srv.dicomweb_url + "/studies", content=body,
                      headers={"Content-Type": ctype, **srv.headers}).status_code == 200


def test_console_counts_match_what_was_stored(fresh_server: YunyingServer) -> None:
    srv = fresh_server
    ct1, ct2, mr = generate_uid(), generate_uid(), generate_uid()
    series = generate_uid()
    stow(srv, *[make_ct(ct1, series, number=i, date="20240101", accession="C1") for i in range(1, 4)])
    stow(srv, make_ct(ct2, date="20240101", accession="C2"))
    stow(srv, make_ct(mr, date="20240105", modality="MR", accession="M1"))
    assert post(srv, report("final", identifier=[{"type": {"coding": [{"code": "ACSN"}]}, "value": "C2"}])
                ).status_code == 201
    token = issue(srv, study=ct1, phone="13900000001").json()["token"]
    issue(srv, study=mr, phone="13900000002")
    api(srv, "verify/send", {"exam": token, "phone": "13900000001"})
    session = api(srv, "verify/sms", {"exam": token, "phone": "13900000001", "code": last_code(srv, "13900000001")})
    bearer = {"Authorization": f"Bearer {session.json()['access_token']}"}
    assert httpx.post(srv.http_url + "/api/portal/shares", json={"study": ct1, "hours": 24},
                      headers=bearer).status_code == 201
    assert httpx.post(srv.http_url + "/api/portal/delivery", json={"study": mr, "on": False},
                      headers=srv.headers).status_code == 200

    got = httpx.get(srv.http_url + "/api/portal/console/stats", headers=srv.headers).json()
    assert got["exams"] == 3 and got["images"] == 6 and got["reports"] == 1  # 3 + 1 + 1 images, + the report
    assert got["per_day"] == {"20240101": 2, "20240105": 1}
    assert got["images_per_day"] == {"20240101": 5, "20240105": 1}
    assert got["per_hospital"] == {"default": 3}
    assert got["per_modality"] == {"CT": 2, "DOC": 1, "MR": 1}
    assert got["reports_per_day"] == {"20240101": 1} and got["reports_per_hospital"] == {"default": 1}
    assert got["images_per_hospital"] == {"default": 6}
    assert got["images_per_modality"] == {"CT": 4, "MR": 1, "DOC": 1}
    assert got["delivery"] == {"qr_codes": 2, "bound_to_patients": 1, "delivery_off": 1, "patient_shares": 1}
    assert 0 < got["storage"]["dicom_bytes"] < got["storage"]["total_bytes"]
    assert httpx.get(srv.http_url + "/api/portal/console/stats", headers=bearer).status_code == 403


def ct(study: str, series: str | None = None, **attrs: Any) -> pydicom.Dataset:
    base = {k: attrs.pop(k) for k in ("name", "patient_id", "date", "modality", "accession", "number") if k in attrs}
    ds = make_ct(study, series, charset="ISO_IR 192", **base)
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def search(srv: YunyingServer, **params: str) -> list[dict]:
    r = httpx.get(srv.http_url + "/api/portal/console/exams", params=params, headers=srv.headers)
    assert r.status_code == 200, r.text
    return r.json()["exams"]


def test_console_search_status_exports_preview_switch_and_access_log(fresh_server: YunyingServer) -> None:
    srv = fresh_server
    chest, head, knee = generate_uid(), generate_uid(), generate_uid()
    s1 = generate_uid()
    stow(srv, *[ct(chest, s1, number=i, name="Wang^Fang=王芳", patient_id="PW", accession="K-1", date="20240301",
                   PatientSex="F", PatientAge="045Y", AdmissionID="V100", BodyPartExamined="CHEST") for i in (1, 2)])
    stow(srv, ct(head, name="Li^Lei=李雷", patient_id="PL", accession="K-2", date="20240302", PatientSex="M",
                 PatientBirthDate="19900515", AdmissionID="V200", BodyPartExamined="HEAD"))
    stow(srv, ct(knee, name="Li^Lei=李雷", patient_id="PL", accession="K-3", date="20240310", modality="MR",
                 PatientSex="M", PatientAge="033Y", AdmissionID="V201", BodyPartExamined="KNEE"))
    assert post(srv, report("final", identifier=[{"type": {"coding": [{"code": "ACSN"}]}, "value": "K-1"}])
                ).status_code == 201

    assert [e["accession"] for e in search(srv, accession="K-1")] == ["K-1"]
    [row] = search(srv, accession="K-1")
    assert (row["images"], row["series"], row["reports"], row["released"]) == (2, 1, 1, 1)
    assert row["name"] == "王芳" and row["sex"] == "F" and row["age"] == 45 and row["visit"] == "V100"
    assert row["body_parts"] == ["CHEST"] and row["qr"] is False
    assert {e["accession"] for e in search(srv, name="李雷")} == {"K-2", "K-3"}
    assert {e["accession"] for e in search(srv, sex="M", modality="CT")} == {"K-2"}
    assert [e["age"] for e in search(srv, accession="K-2")] == [33]  # from the birth date and the study date
    assert {e["accession"] for e in search(srv, age="30-40")} == {"K-2", "K-3"}
    assert {e["accession"] for e in search(srv, visit="V201")} == {"K-3"}
    assert {e["accession"] for e in search(srv, body_part="head")} == {"K-2"}
    assert {e["accession"] for e in search(srv, date="20240301-20240305")} == {"K-1", "K-2"}
    assert search(srv, accession="NONE") == []
    assert httpx.get(srv.http_url + "/api/portal/console/exams", params={"age": "old"},
                     headers=srv.headers).status_code == 400
    for bad in ({"limit": "0"}, {"date": "20241345"}, {"date": "yesterday"}, {"name": "x" * 65}):
        r = httpx.get(srv.http_url + "/api/portal/console/exams", params=bad, headers=srv.headers)
        assert r.status_code == 400 and r.json()["error"], (bad, r.text)

    book = httpx.get(srv.http_url + "/api/portal/console/exams", params={"name": "李雷", "format": "xlsx"},
                     headers=srv.headers)
    assert book.status_code == 200 and book.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = openpyxl.load_workbook(io.BytesIO(book.content))["exams"]
    header, *rows = list(sheet.values)
    assert sorted(r[header.index("accession")] for r in rows) == ["K-2", "K-3"]
    figures = openpyxl.load_workbook(io.BytesIO(httpx.get(srv.http_url + "/api/portal/console/stats",
                                                          params={"format": "xlsx"}, headers=srv.headers).content))
    assert [list(r) for r in figures["per_modality"].values] == [
        ["modality", "exams", "images"], ["CT", 2, 3], ["DOC", 1, 1], ["MR", 1, 1]]
    assert list(figures["per_day"].values)[1:] == [("20240301", 1, 3, 1), ("20240302", 1, 1, 0), ("20240310", 1, 1, 0)]
    history = httpx.get(srv.http_url + "/api/portal/console/stats", headers=srv.headers).json()["storage"]["history"]
    assert len(history) == 1 and history[0]["dicom_bytes"] > 0  # one sample per day

    pdf = httpx.get(srv.http_url + "/api/portal/console/report", params={"study": chest}, headers=srv.headers)
    assert pdf.status_code == 200 and pdf.content == PDF and pdf.headers["content-type"] == "application/pdf"
    assert httpx.get(srv.http_url + "/api/portal/console/report", params={"study": head},
                     headers=srv.headers).status_code == 404

    token = issue(srv, study=chest, phone="13900000009").json()["token"]
    head_token = issue(srv, study=head, phone="13900000010").json()["token"]
    api(srv, "verify/send", {"exam": token, "phone": "13900000009"})
    session = api(srv, "verify/sms", {"exam": token, "phone": "13900000009", "code": last_code(srv, "13900000009")})
    bearer = {"Authorization": f"Bearer {session.json()['access_token']}"}
    assert httpx.get(f"{srv.dicomweb_url}/studies/{chest}/metadata", headers=bearer).status_code == 200
    [row] = search(srv, accession="K-1")
    assert row["qr"] is True and row["bound"] is True and row["delivery_off"] is False

    def access(**body: str) -> list[dict]:
        r = httpx.post(srv.http_url + "/api/portal/console/access", json=body, headers=srv.headers)
        assert r.status_code == 200, r.text
        return r.json()["records"]
    deadline = time.monotonic() + 10  # the trail's writer commits in the background
    while True:
        by_phone = access(phone="139-0000-0009")
        if any(r["principal_kind"] == "patient" and r["action"] == "metadata" and chest in r["studies"]
               for r in by_phone):
            break
        assert time.monotonic() < deadline, by_phone
        time.sleep(0.3)
    assert any(chest in r["studies"] for r in access(accession="K-1"))
    assert any(chest in r["studies"] for r in access(name="王芳"))
    assert access(phone="13900000099") == []
    assert httpx.post(srv.http_url + "/api/portal/console/access", json={}, headers=srv.headers).status_code == 400

    off = httpx.post(srv.http_url + "/api/portal/delivery", json={"patient": "PL", "on": False}, headers=srv.headers)
    assert off.status_code == 200 and len(off.json()["exams"]) == 1  # K-2 has a QR code, K-3 none
    refused = api(srv, "verify/exam", {"exam": head_token})
    assert refused.status_code == 410 and "switched off" in refused.json()["error"]
    assert api(srv, "verify/exam", {"exam": token}).status_code == 200  # another patient's exam: untouched
    assert [e["delivery_off"] for e in search(srv, accession="K-2")] == [True]
    assert httpx.post(srv.http_url + "/api/portal/delivery", json={"patient": "PW", "study": chest, "on": False},
                      headers=srv.headers).status_code == 400
    wild = httpx.post(srv.http_url + "/api/portal/delivery", json={"patient": "P*", "on": False}, headers=srv.headers)
    assert wild.status_code == 400 and "wildcard" in wild.json()["error"]
    assert api(srv, "verify/exam", {"exam": token}).status_code == 200  # nothing else was switched off

    for method, path in (("GET", "/api/portal/console/exams"), ("GET", "/api/portal/console/report?study=" + chest),
                         ("POST", "/api/portal/console/access"), ("GET", "/api/portal/console/stats")):
        assert httpx.request(method, srv.http_url + path, json={"name": "x"}).status_code == 401
        assert httpx.request(method, srv.http_url + path, json={"name": "x"}, headers=bearer).status_code == 403


def test_a_delivery_key_sees_its_own_hospital_only(tmp_path) -> None:
    import json

    from tests.auth.test_access import make_user
    from tests.conftest import start_with_env

    keys = [{"name": "desk", "key": "yk_desk_default_0123456789", "scopes": ["delivery"], "hospital": "default"},
            {"name": "other", "key": "yk_desk_other_0123456789ab", "scopes": ["delivery"], "hospital": "h2"}]
    srv = start_with_env(tmp_path / "data", YUNYING_API_KEYS=json.dumps(keys))
    try:
        study = generate_uid()
        stow(srv, make_ct(study, accession="SC-1"))
        assert post(srv, report("final", identifier=[{"type": {"coding": [{"code": "ACSN"}]}, "value": "SC-1"}])
                    ).status_code == 201
        issue(srv, study=study, phone="13900000021")
        mine, other = ({"Authorization": f"Bearer {k['key']}"} for k in keys)

        def get(path: str, headers: dict, **params: str) -> httpx.Response:
            return httpx.get(srv.http_url + path, params=params, headers=headers)
        assert [e["accession"] for e in get("/api/portal/console/exams", mine).json()["exams"]] == ["SC-1"]
        assert get("/api/portal/console/report", mine, study=study).status_code == 200
        assert get("/api/portal/console/exams", other).json()["exams"] == []  # another hospital's desk
        assert get("/api/portal/console/report", other, study=study).status_code == 404
        assert httpx.post(srv.http_url + "/api/portal/delivery", json={"study": study, "on": False},
                          headers=other).status_code == 404
        assert httpx.post(srv.http_url + "/api/portal/console/access", json={"accession": "SC-1"},
                          headers=other).json()["records"] == []
        assert httpx.post(srv.http_url + "/api/portal/delivery", json={"study": study, "on": False},
                          headers=mine).status_code == 200
        assert get(f"/dicomweb/studies/{study}/metadata", mine).status_code in (403, 404)  # no images for the desk
        operator = {"Authorization": "Bearer " + make_user(srv, "desk.wang", [{"role": "delivery_operator"}])}
        [row] = get("/api/portal/console/exams", operator).json()["exams"]  # a signed-in delivery operator
        assert row["accession"] == "SC-1" and row["delivery_off"] is True
        assert get("/api/portal/console/stats", operator).status_code == 200
        assert get(f"/dicomweb/studies/{study}/metadata", operator).status_code in (403, 404)
        assert get("/api/admin/users", operator).status_code == 403
    finally:
        srv.stop()
