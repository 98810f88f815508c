"""The delivery console's counts match what was stored and delivered (a fresh archive)."""
from __future__ import annotations

import httpx
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.portal.conftest import api, issue, last_code
from tests.portal.test_fhir_reports import post, report


def stow(srv: YunyingServer, *datasets: object) -> None:
    body, ctype = multipart(*[part10(ds) for ds in datasets])  # type: ignore[arg-type]
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
    assert got["delivery"] == {"qr_codes": 2, "bound_to_patients": 1, "delivery_off": 1, "patient_shares": 1}
    assert 0 < got["storage"]["dicom_bytes"] < got["storage"]["total_bytes"]
    assert httpx.get(srv.http_url + "/api/portal/console/stats", headers=bearer).status_code == 403
