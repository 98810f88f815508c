"""The patient's whole history (issue 15 part 5, issue 14 part 3) and delivery switched off per
patient (issue 14 part 9), against a real archive whose master index links two systems' patient
IDs by the resident ID number and a look-alike (same name, birth date and sex, no ID number) by
score: the portal shows the linked exams, never the look-alike's; switching the patient off
withholds exams stored afterwards too, share links included."""
from __future__ import annotations

import time
from typing import Any

import httpx
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.frontends.conftest import PHONE as PHONE_CONTEXT
from tests.portal.conftest import api, issue, last_code
from yunying.records import idcard

NUMBER = "11010519491231002" + idcard.check_character("11010519491231002")
PHONE = "13711112222"


def store(srv: YunyingServer, issuer: str, pid: str, accession: str, id_number: str = "", date: str = "20240101",
          phone: str = "") -> str:
    uid = generate_uid()
    ds = make_ct(uid, accession=accession, patient_id=pid, date=date, name="Li^Na", ideographic="李娜",
                 charset="ISO_IR 192")
    ds.IssuerOfPatientID, ds.PatientBirthDate, ds.PatientSex = issuer, "19491231", "F"
    if id_number:
        item = Dataset()
        item.PatientID, item.TypeOfPatientID = id_number, "TEXT"
        ds.OtherPatientIDsSequence = [item]
    if phone:
        ds.PatientTelephoneNumbers = phone
    body, ctype = multipart(part10(ds))
    r = httpx.post(srv.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype, **srv.headers})
    assert r.status_code == 200, r.text
    return uid


def identity(srv: YunyingServer, pid: str) -> dict[str, Any] | None:
    r = httpx.get(srv.http_url + "/api/mpi/identities", params={"q": pid}, headers=srv.headers)
    assert r.status_code == 200, r.text
    return next((i for i in r.json() if i["patient_id"] == pid), None)


def linked(srv: YunyingServer, *pids: str, timeout: float = 30) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = {pid: identity(srv, pid) for pid in pids}
        if all(found.values()) and len({i["person"] for i in found.values() if i}) == 1:
            return {k: v for k, v in found.items() if v}
        assert time.monotonic() < deadline, f"the master index did not link {pids}: {found}"
        time.sleep(0.3)


def uids(answer: httpx.Response) -> set[str]:
    assert answer.status_code == 200, answer.text
    return {js["0020000D"]["Value"][0] for js in answer.json()}


def delivery(srv: YunyingServer, **body: object) -> httpx.Response:
    return httpx.post(srv.http_url + "/api/portal/delivery", json=body, headers=srv.headers)


def test_history_shows_id_number_links_not_look_alikes_and_patient_switch_withholds_later_exams(
        open_page: Any, srv: YunyingServer) -> None:
    scanned = store(srv, "RADIOLOGY", "RAD-1", "H-1", NUMBER, "20240301", PHONE)
    earlier = store(srv, "RADIOLOGY", "RAD-1", "H-0", NUMBER, "20230301")  # same PatientID + issuer, no QR
    other_system = store(srv, "ULTRASOUND", "US-77", "U-9", NUMBER, "20220510")  # the same ID number
    look_alike = store(srv, "ENDOSCOPY", "END-5", "E-3", "", "20210101")  # same name, birth date, sex; no ID
    ids = linked(srv, "RAD-1", "US-77", "END-5")
    assert ids["US-77"]["link"] == "id" and ids["END-5"]["link"] == "auto"  # the look-alike IS in the person

    token = issue(srv, study=scanned, phone=PHONE).json()["token"]
    assert api(srv, "verify/send", {"exam": token, "phone": PHONE}).status_code == 200
    session = api(srv, "verify/sms", {"exam": token, "phone": PHONE, "code": last_code(srv, PHONE)})
    assert session.status_code == 200, session.text
    assert {e["study"] for e in session.json()["exams"]} == {scanned, earlier, other_system}
    bearer = {"Authorization": "Bearer " + session.json()["access_token"]}
    assert uids(httpx.get(srv.dicomweb_url + "/studies", headers=bearer)) == {scanned, earlier, other_system}
    assert uids(httpx.get(srv.dicomweb_url + "/studies", params={"person": ids["RAD-1"]["person"]},
                          headers=bearer)) == {scanned, earlier, other_system}
    assert httpx.get(f"{srv.dicomweb_url}/studies/{look_alike}/metadata", headers=bearer).status_code == 404
    assert httpx.get(f"{srv.dicomweb_url}/studies/{other_system}/metadata", headers=bearer).status_code == 200
    me = httpx.get(srv.http_url + "/api/portal/me", headers=bearer).json()["exams"]
    assert {e["study"]: bool(e.get("linked")) for e in me} == {scanned: False, earlier: True, other_system: True}
    share = api(srv, "shares", {"study": other_system, "hours": 24}, session.json()["access_token"])
    assert share.status_code == 201, share.text  # a linked exam may be shared like a bound one
    assert api(srv, "shares", {"study": look_alike, "hours": 24}, session.json()["access_token"]).status_code == 404

    # the phone page lists the three (and not the look-alike's)
    p = open_page(**PHONE_CONTEXT, locale="en-US")
    page = p.page
    page.goto(srv.http_url + "/portal/")
    page.evaluate("t => sessionStorage.setItem('yunying.access_token', t)", session.json()["access_token"])
    page.goto(srv.http_url + "/portal/")
    page.wait_for_selector("#home:not([hidden]) .exam")
    page.wait_for_function("document.querySelectorAll('.exam').length === 3")
    cards = page.inner_text("#exams")
    assert "2021-01-01" not in cards and "2022-05-10" in cards and "2023-03-01" in cards

    # the patient switched off: every session and share ends; exams stored afterwards are withheld too
    off = delivery(srv, patient="RAD-1", issuer="RADIOLOGY", on=False)
    assert off.status_code == 200, off.text
    assert httpx.get(srv.dicomweb_url + "/studies", headers=bearer).status_code == 401
    later = store(srv, "RADIOLOGY", "RAD-1", "H-2", NUMBER, "20250101", PHONE)
    later_token = issue(srv, study=later, phone=PHONE).json()["token"]
    for exam in (token, later_token, issue(srv, study=other_system, phone=PHONE).json()["token"]):
        refused = api(srv, "verify/exam", {"exam": exam})
        assert refused.status_code == 410 and "switched off" in refused.json()["error"], refused.text
    assert api(srv, "verify/share", {"token": share.json()["token"]}).status_code == 410
    rows = httpx.get(srv.http_url + "/api/portal/console/exams", params={"accession": "H-2"}, headers=srv.headers)
    assert [(e["delivery_off"], e["patient_off"], e["issuer"]) for e in rows.json()["exams"]] == [
        (True, True, "RADIOLOGY")]

    page.goto("about:blank")  # else only the fragment changes: the same document
    page.goto(srv.http_url + "/portal/#exam=" + later_token)
    page.wait_for_selector("#problem:not([hidden])")
    assert "switched off online delivery" in page.inner_text("#problem")
    page.goto(srv.http_url + "/portal/share.html#t=" + share.json()["token"])
    page.wait_for_selector("#problem:not([hidden])")
    assert "switched off" in page.inner_text("#problem")
    assert not [e for e in p.errors if "status of 410" not in e], p.errors  # the two refusals, nothing else

    assert delivery(srv, patient="RAD-1", issuer="RADIOLOGY", on=True).status_code == 200
    assert api(srv, "verify/exam", {"exam": later_token}).status_code == 200
    assert api(srv, "verify/share", {"token": share.json()["token"]}).json()["state"] == "revoked"  # stays withdrawn


def test_a_patient_switch_names_one_patient(srv: YunyingServer) -> None:
    store(srv, "SYS-A", "TWIN-1", "T-1")
    store(srv, "SYS-B", "TWIN-1", "T-2")
    ambiguous = delivery(srv, patient="TWIN-1", on=False)
    assert ambiguous.status_code == 409 and "issuer" in ambiguous.json()["error"]
    assert delivery(srv, patient="NOBODY", on=False).status_code == 404
    assert delivery(srv, patient="TWIN-1", issuer="SYS-*", on=False).status_code == 400
    assert delivery(srv, patient="TWIN-1", issuer="SYS-A", on=False).status_code == 200
    assert httpx.post(srv.http_url + "/api/portal/delivery", json={"patient": "TWIN-1", "on": False}).status_code == 401
