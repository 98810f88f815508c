"""Part 3-4 over HTTP: downloads behind the permission, shares belong to their patient."""
from __future__ import annotations

import httpx

from benchmarks.net import YunyingServer
from tests.portal.conftest import api, issue, last_code, store_study


def signed_in(srv: YunyingServer, phone: str) -> tuple[str, dict]:
    study = store_study(srv)
    token = issue(srv, study=study, phone=phone).json()["token"]
    assert api(srv, "verify/send", {"exam": token, "phone": phone}).status_code == 200
    session = api(srv, "verify/sms", {"exam": token, "phone": phone, "code": last_code(srv, phone)}).json()
    return study, {"Authorization": f"Bearer {session['access_token']}"}


def test_patient_downloads_share_views_only_and_others_cannot_touch_it(srv: YunyingServer) -> None:
    study, patient = signed_in(srv, "13300000001")
    other_study, stranger = signed_in(srv, "13300000002")
    accept = {"Accept": 'multipart/related; type="application/dicom"'}
    whole = httpx.get(f"{srv.dicomweb_url}/studies/{study}", headers=patient | accept)
    assert whole.status_code == 200 and b"DICM" in whole.content  # the patient's token may download

    made = httpx.post(srv.http_url + "/api/portal/shares", json={"study": study, "hours": 24}, headers=patient)
    assert made.status_code == 201 and len(made.json()["code"]) == 6 and made.json()["qr_svg"].startswith("<svg")
    share = made.json()
    assert httpx.post(srv.http_url + "/api/portal/shares", json={"study": study, "hours": 24},
                      headers=stranger).status_code == 404  # not their exam
    assert httpx.post(srv.http_url + "/api/portal/shares", json={"study": study, "hours": 0},
                      headers=patient).status_code == 400
    assert httpx.delete(f"{srv.http_url}/api/portal/shares/{share['id']}", headers=stranger).status_code == 404
    assert httpx.get(srv.http_url + "/api/portal/shares", headers=stranger).json()["shares"] == []
    assert httpx.get(srv.http_url + "/api/portal/shares", headers=srv.headers).status_code == 403  # not a patient

    viewer = httpx.post(srv.http_url + "/api/auth/exchange", json={"token": share["token"], "code": share["code"]})
    assert viewer.status_code == 200
    friend = {"Authorization": f"Bearer {viewer.json()['access_token']}"}
    assert httpx.get(f"{srv.dicomweb_url}/studies/{study}/metadata", headers=friend).status_code == 200
    assert httpx.get(f"{srv.dicomweb_url}/studies/{study}", headers=friend | accept).status_code == 403  # view only
    assert httpx.get(f"{srv.dicomweb_url}/studies/{other_study}/metadata", headers=friend).status_code == 404

    assert httpx.delete(f"{srv.http_url}/api/portal/shares/{share['id']}", headers=patient).status_code == 200
    assert httpx.get(f"{srv.dicomweb_url}/studies/{study}/metadata", headers=friend).status_code == 401
    assert api(srv, "verify/share", {"token": share["token"]}).json()["state"] == "revoked"
    assert api(srv, "verify/share", {"token": "ycap_nope"}).status_code == 404


def test_switching_delivery_off_ends_access_and_hides_the_exam(srv: YunyingServer) -> None:
    study, patient = signed_in(srv, "13300000003")
    token = issue(srv, study=study).json()["token"]
    assert httpx.get(f"{srv.dicomweb_url}/studies/{study}/metadata", headers=patient).status_code == 200
    share = httpx.post(srv.http_url + "/api/portal/shares", json={"study": study, "hours": 24}, headers=patient).json()
    assert api(srv, "verify/share", {"token": share["token"]}).json()["state"] == "active"
    assert httpx.post(srv.http_url + "/api/portal/delivery", json={"study": study, "on": False},
                      headers=patient).status_code == 403  # a patient cannot
    off = httpx.post(srv.http_url + "/api/portal/delivery", json={"study": study, "on": False}, headers=srv.headers)
    assert off.status_code == 200 and off.json()["delivery"] is False
    assert httpx.get(f"{srv.dicomweb_url}/studies/{study}/metadata", headers=patient).status_code == 401
    refused = api(srv, "verify/exam", {"exam": token})
    assert refused.status_code == 410 and "switched off" in refused.json()["error"]  # the portal says why
    assert api(srv, "verify/share", {"token": share["token"]}).status_code == 410  # its links say why too
    assert httpx.post(srv.http_url + "/api/auth/exchange", json={"token": share["token"], "code": share["code"]}
                      ).status_code >= 400  # and open nothing
    on = httpx.post(srv.http_url + "/api/portal/delivery", json={"study": study, "on": True}, headers=srv.headers)
    assert on.status_code == 200 and api(srv, "verify/exam", {"exam": token}).status_code == 200
    assert api(srv, "verify/share", {"token": share["token"]}).json()["state"] == "revoked"  # withdrawn for good
    assert httpx.post(srv.http_url + "/api/portal/delivery", json={"study": study}, headers=srv.headers).status_code == 400
