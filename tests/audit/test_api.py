"""Reading the trail over HTTP (issue 12 part 3): the audit admin's search, exports, per-patient
access list and verify; nobody else may read it; reading it is itself recorded."""
from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from benchmarks.net import REPO_ROOT, YunyingServer
from tests.conftest import start_with_env
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.frontends import conftest as fe

open_page = fe.open_page  # the front ends' browser fixture, shared

PATIENT = "P-API-3"
AUDITOR = "ak_auditor_" + secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[YunyingServer, str]]:
    keys = json.dumps([{"name": "auditor", "key": AUDITOR, "scopes": ["audit.read"]}])
    srv = start_with_env(tmp_path_factory.mktemp("audit-api") / "data", YUNYING_API_KEYS=keys)
    ct = make_ct(patient_id=PATIENT, accession="ACC-API")
    body, ctype = multipart(part10(ct))
    with httpx.Client(base_url=srv.dicomweb_url, headers=srv.headers, timeout=30) as c:
        assert c.post("/studies", content=body, headers={"Content-Type": ctype}).status_code == 200
        assert c.get(f"/studies/{ct.StudyInstanceUID}/metadata").status_code == 200
    try:
        yield srv, ct.StudyInstanceUID
    finally:
        srv.stop()


def auditor(srv: YunyingServer) -> httpx.Client:
    return httpx.Client(base_url=srv.http_url, headers={"Authorization": f"Bearer {AUDITOR}"}, timeout=30)


def test_the_audit_admin_searches_by_patient_and_action(server: tuple[YunyingServer, str]) -> None:
    srv, study = server
    with auditor(srv) as c:
        r = c.get("/api/audit/records", params={"patient": PATIENT, "action": "metadata"})
        assert r.status_code == 200
        (rec,) = r.json()
        assert (rec["studies"], rec["principal_id"], rec["outcome"]) == (study, "env:YUNYING_API_KEY", "success")
        assert c.get("/api/audit/records", params={"study": study}).json()  # store and metadata
        assert c.get("/api/audit/records", params={"since": "2999-01-01"}).json() == []


@pytest.mark.parametrize("query, says", [({"since": "yesterday"}, "since"), ({"limit": "99999"}, "limit"),
                                         ({"limit": "-1"}, "limit")])
def test_bad_filters_are_a_400_naming_them(server: tuple[YunyingServer, str], query: dict, says: str) -> None:
    with auditor(server[0]) as c:
        r = c.get("/api/audit/records", params=query)
    assert r.status_code == 400 and says in r.json()["error"]


def test_nobody_else_reads_the_trail(server: tuple[YunyingServer, str]) -> None:
    srv, _ = server
    # the full-scope key carries `admin`, which does not imply audit.read (separation of duties)
    assert httpx.get(srv.http_url + "/api/audit/records", headers=srv.headers).status_code == 403
    assert httpx.get(srv.http_url + "/api/audit/records").status_code == 401
    with auditor(srv) as c:  # and the audit admin sees no images
        assert c.get("/dicomweb/studies").status_code == 403


def test_exports_csv_xlsx_and_dicom_audit_messages(server: tuple[YunyingServer, str]) -> None:
    srv, study = server
    with auditor(srv) as c:
        csv = c.get("/api/audit/export", params={"format": "csv", "patient": PATIENT})
        xlsx = c.get("/api/audit/export", params={"format": "xlsx", "patient": PATIENT})
        xml = c.get("/api/audit/export", params={"format": "dicom", "patient": PATIENT})
        assert c.get("/api/audit/export", params={"format": "pdf"}).status_code == 400
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("seq,time,principal_kind") and len(lines) == 3  # store + metadata
    assert all(PATIENT in line and study in line for line in lines[1:])
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet.max_row == 3 and sheet.cell(1, 12).value == "patient_id" and sheet.cell(2, 12).value == PATIENT
    messages = ET.fromstring(xml.content).findall("AuditMessage")
    codes = sorted(str(e.get("csd-code")) for m in messages if (e := m.find("EventIdentification/EventID")) is not None)
    assert codes == ["110103", "110104"] and len(messages) == 2  # instances accessed (metadata), transferred (store)
    for m in messages:
        ids = {p.get("ParticipantObjectID") for p in m.findall("ParticipantObjectIdentification")}
        assert {study} <= ids and any((i or "").startswith(PATIENT) for i in ids)


def test_per_patient_access_list_and_verify(server: tuple[YunyingServer, str]) -> None:
    srv, _ = server
    with auditor(srv) as c:
        accesses = c.get(f"/api/audit/patients/{PATIENT}").json()
        assert [a["action"] for a in accesses] == ["metadata", "store"]
        assert accesses[0]["principal_id"] == "env:YUNYING_API_KEY" and accesses[0]["time"].endswith("+00:00")
        assert c.get("/api/audit/patients/NOBODY").json() == []
        v = c.get("/api/audit/verify").json()
    assert v["intact"] and v["checked"] >= 3


def test_reading_the_trail_is_recorded(server: tuple[YunyingServer, str]) -> None:
    srv, _ = server
    with auditor(srv) as c:
        c.get("/api/audit/records", params={"user": "someone"})
        reads = c.get("/api/audit/records", params={"action": "audit.read", "user": "config:auditor"}).json()
    assert any('"user=someone"' in r["detail"] or "user=someone" in r["detail"] for r in reads)
    assert all(r["principal_kind"] == "system" for r in reads)


def test_the_mlps_statement_follows_the_live_settings(server: tuple[YunyingServer, str]) -> None:
    srv, _ = server
    with auditor(srv) as c:
        controls = {x["clause"]: x for x in c.get("/api/security/statement").json()}
        md = c.get("/api/security/statement", params={"format": "markdown"}).text
        assert c.get("/api/security/statement", params={"lang": "fr"}).status_code == 400
    assert controls["8.1.4.3"]["status"] == "partly"  # auditing on, no collector configured
    assert controls["8.1.4.8"]["status"] == "not met"  # this test server has no TLS
    assert "| 8.1.4.3 | 安全审计 | 部分符合 |" in md
    off = subprocess.run([sys.executable, "-m", "yunying.cli", "security", "statement", "--json"], check=False,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT),
                                                              "YUNYING_AUDIT": "false"}, timeout=60)
    assert {x["clause"]: x["status"] for x in json.loads(off.stdout)}["8.1.4.3"] == "not met"


def test_the_audit_page_on_a_phone(server: tuple[YunyingServer, str], open_page: Any) -> None:
    srv, study = server
    p = open_page(**fe.PHONE)
    page = p.page
    page.goto(f"{srv.http_url}/admin/audit/?lang=en#access_token={AUDITOR}")
    page.wait_for_selector("#records li")
    assert page.locator("h1").inner_text() == "Audit trail"
    page.fill("#filters [name=patient]", PATIENT)
    page.select_option("#filters [name=action]", "metadata")
    page.click("#filters button[type=submit]")
    page.wait_for_function("document.querySelector('#count').textContent === '1 records'")
    text = page.locator("#records").inner_text()
    assert "metadata" in text and study in text and "system:env:YUNYING_API_KEY" in text
    page.click("#verify")
    page.wait_for_function("document.querySelector('#message').textContent.includes('intact')")
    with page.expect_download() as download:
        page.click("[data-export=csv]")
    assert PATIENT in Path(download.value.path()).read_text(encoding="utf-8-sig")
    page.click("#lang")
    page.wait_for_function("document.querySelector('h1').textContent === '审计日志'")
    page.wait_for_function("document.querySelector('#records').textContent.includes('成功')")  # re-rendered
    assert "metadata" in page.locator("#records").inner_text()  # actions stay as recorded
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    assert not p.errors
