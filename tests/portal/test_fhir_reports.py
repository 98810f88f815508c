"""Reports in as FHIR R4 DiagnosticReport: stored as Encapsulated PDF in the exam's study through
the archive; only final/amended ones are released (VERIFIED); bad reports are clear 4xx."""
from __future__ import annotations

import base64

import httpx

from benchmarks.net import YunyingServer
from tests.portal.conftest import store_study

PDF = "%PDF-1.4\n% 影像诊断报告: 右肺上叶结节\n%%EOF\n".encode()


def report(status: str = "final", **extra: object) -> dict:
    return {"resourceType": "DiagnosticReport", "status": status, "issued": "2024-01-02T10:30:00+08:00",
            "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                 "code": "ACSN"}]}, "value": "FHIR-1"}],
            "presentedForm": [{"contentType": "application/pdf", "data": base64.b64encode(PDF).decode(),
                               "title": "CT 胸部"}]} | extra


def post(srv: YunyingServer, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(srv.http_url + "/api/portal/fhir/DiagnosticReport", json=body,
                      headers=srv.headers if headers is None else headers)


def test_final_and_preliminary_reports_land_in_the_study(srv: YunyingServer) -> None:
    study = store_study(srv, accession="FHIR-1")
    draft = post(srv, report("preliminary"))
    assert draft.status_code == 201, draft.text
    final = post(srv, report("final", identifier=[], imagingStudy=[
        {"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{study}"}}]))
    assert final.status_code == 201 and final.json()["study"] == study
    found = httpx.get(f"{srv.dicomweb_url}/studies/{study}/instances",
                      params={"SOPClassUID": "1.2.840.10008.5.1.4.1.1.104.1", "includefield": "0040A493"},
                      headers=srv.headers).json()
    flags = sorted(i["0040A493"]["Value"][0] for i in found)
    assert flags == ["UNVERIFIED", "VERIFIED"]
    f = final.json()
    pdf = httpx.get(f"{srv.dicomweb_url}/studies/{study}/series/{f['series']}/instances/{f['sop']}/bulkdata/00420011",
                    headers={"Accept": "application/octet-stream", **srv.headers})
    assert pdf.content.rstrip(b"\0") == PDF  # the Chinese text of the report arrives intact


def test_bad_reports_are_clear_4xx(srv: YunyingServer) -> None:
    store_study(srv, accession="FHIR-2")
    named = report(identifier=[{"type": {"coding": [{"code": "ACSN"}]}, "value": "FHIR-2"}])
    assert post(srv, named | {"status": "bogus"}).status_code == 400
    assert post(srv, named | {"resourceType": "Patient"}).status_code == 400
    assert post(srv, named | {"presentedForm": [{"contentType": "application/pdf", "data": "%%%"}]}).status_code == 400
    not_pdf = base64.b64encode(b"hello").decode()
    assert post(srv, named | {"presentedForm": [{"contentType": "application/pdf", "data": not_pdf}]}).status_code == 400
    assert post(srv, named | {"issued": "yesterday"}).status_code == 400
    assert post(srv, report(identifier=[])).status_code == 400
    assert post(srv, report(identifier=[{"type": {"coding": [{"code": "ACSN"}]}, "value": "NOPE"}])).status_code == 404
    assert post(srv, named, headers={}).status_code == 401
