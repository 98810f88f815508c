"""The records HTTP API through a real `yunying serve` (issue 15 parts 2-4): a database source
and the MLLP listener configured by settings, matching, the queue, merges; refusals."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hl7.client import MLLPClient
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer, free_port
from tests.conftest import start_with_env
from tests.dicomweb.helpers import multipart
from tests.frontends.conftest import PHONE, open_page  # noqa: F401 - the page fixture
from tests.records import hl7_messages as m
from tests.records.conftest import id_card
from tests.records.dicom import instance
from tests.records.test_sql_collector import MAPPING, hospital_db

READER = "yk_records_reader_" + "r" * 16


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    root = tmp_path_factory.mktemp("records")
    url = f"sqlite:///{root / 'his.sqlite'}"
    hospital_db(url, 3)
    # on demand only (interval_seconds = 0): a scheduled run polls 1 s after start, and on a loaded
    # machine it read the 3 rows before the test's own run (which then saw 0)
    mapping = MAPPING.format(url=url, batch=10).replace('hospital = "h1"', 'hospital = "default"')
    mapping = mapping.replace("batch = 10\n", "batch = 10\ninterval_seconds = 0\n", 1)
    (root / "sources.toml").write_text(mapping, encoding="utf-8")
    s = start_with_env(root / "data", YUNYING_RECORDS_SOURCES=str(root / "sources.toml"),
                       YUNYING_HL7_PORT=str(free_port()), YUNYING_HL7_ISSUER="HIS1",
                       YUNYING_RECORDS_MATCH_SECONDS="0", YUNYING_API_KEYS=json.dumps(
                           [{"name": "reader", "key": READER, "scopes": ["dicomweb.read"], "hospital": "default"}]))
    yield s
    s.stop()


def hl7_port(srv: YunyingServer) -> int:
    jobs = httpx.get(srv.http_url + "/api/records/jobs", headers=srv.headers).json()["jobs"]
    return int(next(j["name"] for j in jobs if j["kind"] == "hl7").split(":")[1])


def stow(srv: YunyingServer, *parts: bytes) -> None:
    body, ctype = multipart(*parts)
    r = httpx.post(srv.dicomweb_url + "/studies", content=body, headers={**srv.headers, "Content-Type": ctype})
    assert r.status_code == 200, r.text


def test_source_hl7_matching_queue_and_merge(srv: YunyingServer) -> None:
    api = httpx.Client(base_url=srv.http_url + "/api/records", headers=srv.headers, timeout=30)
    refreshed = api.post("/sources/ris/refresh", json={"patient_id": "P0001"}).json()
    assert (refreshed["rows"], refreshed["error"]) == (1, "")
    run = api.post("/sources/ris/run").json()
    assert (run["rows"], run["rejected"], run["error"]) == (3, 0, "")
    assert api.post("/sources/ris/run").json()["rows"] == 0
    jobs = {j["name"]: j for j in api.get("/jobs").json()["jobs"]}
    assert jobs["ris"]["counts"]["rows_total"] == 3 and jobs["ris"]["state"] == "idle"
    assert jobs["ris"]["schedule"] == "on demand"  # so the runs above were the test's own
    with MLLPClient("127.0.0.1", hl7_port(srv)) as client:
        assert b"MSA|AA|O1" in client.send_message(m.orm(pid="P0002", accession="ACC9").encode())
        assert b"MSA|AR" in client.send_message(m.adt("A99", "Z1").encode())
    matched, queued = generate_uid(), generate_uid()
    stow(srv, instance("P0001", matched, accession="E00001"), instance("P0002", queued, accession="", date="20250101"))
    assert api.post("/match").json()["counts"] == {"matched": 1, "queued": 1, "seen": 2}
    exam = api.get("/exams/E00001").json()
    assert exam["study_uid"] == matched and exam["patient"]["id_card"] == id_card()
    (entry,) = api.get("/unmatched").json()["unmatched"]
    assert entry["study"] == queued and entry["candidates"] == []
    got = api.get("/exams", params={"accession": "ACC9"})
    assert got.status_code == 200, got.text
    (open_exam,) = got.json()["exams"]
    assert api.post(f"/unmatched/{queued}/resolve", json={"exam": open_exam["id"]}).status_code == 200
    assert api.get("/exams/ACC9").json()["study_uid"] == queued and api.get("/unmatched").json()["unmatched"] == []
    assert api.put("/body-parts", json={"exam_item": "胸部平扫", "body_part": "chest"}).json()["body_part"] == "CHEST"
    assert api.get("/body-parts").json()["body_parts"] == [
        {"hospital": "default", "exam_item": "胸部平扫", "body_part": "CHEST"}]

    with MLLPClient("127.0.0.1", hl7_port(srv)) as client:  # P0001 merged into P0009
        assert b"MSA|AA" in client.send_message(m.merge("A40", "MG1", "P0009", "P0001").encode())
    found = httpx.get(srv.dicomweb_url + "/studies", params={"PatientID": "P0009"}, headers=srv.headers).json()
    assert [f["0020000D"]["Value"][0] for f in found] == [matched]
    meta = httpx.get(f"{srv.dicomweb_url}/studies/{matched}/metadata", headers=srv.headers).json()
    assert meta[0]["00100020"]["Value"] == ["P0009"]  # the index's copy, corrected
    whole = httpx.get(f"{srv.dicomweb_url}/studies/{matched}", headers={
        **srv.headers, "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    assert whole.status_code == 200 and b"P0009" in whole.content and b"P0001" not in whole.content  # the header, on retrieval
    (merge,) = api.get("/merges").json()["merges"]
    assert merge["studies"] == [matched]
    assert api.post(f"/merges/{merge['id']}/undo").status_code == 200
    assert api.post(f"/merges/{merge['id']}/undo").status_code == 409
    found = httpx.get(srv.dicomweb_url + "/studies", params={"PatientID": "P0001"}, headers=srv.headers).json()
    assert [f["0020000D"]["Value"][0] for f in found] == [matched]
    audit = httpx.get(srv.http_url + "/api/records/jobs", headers=srv.headers)
    assert audit.status_code == 200


ROUTES = [("GET", "/jobs"), ("POST", "/sources/ris/run"), ("POST", "/sources/ris/refresh"), ("GET", "/exams?accession=E1"), ("GET", "/exams/E00001"),
          ("GET", "/unmatched"), ("POST", "/unmatched/1.2.3/resolve"), ("POST", "/match"), ("GET", "/body-parts"),
          ("PUT", "/body-parts"), ("GET", "/merges"), ("POST", "/merges/1/undo")]


@pytest.mark.parametrize("method, path", ROUTES)
def test_refused_without_a_token(srv: YunyingServer, method: str, path: str) -> None:
    assert httpx.request(method, srv.http_url + "/api/records" + path, json={}).status_code == 401


@pytest.mark.parametrize("method, path", [r for r in ROUTES if r[1] != "/exams/E00001"])
def test_refused_without_the_permission(srv: YunyingServer, method: str, path: str) -> None:
    r = httpx.request(method, srv.http_url + "/api/records" + path, json={},
                      headers={"Authorization": f"Bearer {READER}"})
    assert r.status_code == 403, (method, path, r.text)


def test_a_reader_sees_an_exam_of_their_hospital_only(srv: YunyingServer) -> None:
    reader = {"Authorization": f"Bearer {READER}"}
    # the source's rows (E00002 among them) are read here too: under xdist this test may run in a
    # worker where the first test of the file did not (a second run reads nothing new)
    assert httpx.post(srv.http_url + "/api/records/sources/ris/run", headers=srv.headers, timeout=30).status_code == 200
    assert httpx.get(srv.http_url + "/api/records/exams/E00002", headers=reader).status_code == 200
    r = httpx.get(srv.http_url + "/api/records/exams/E00002", params={"hospital": "h9"}, headers=reader)
    assert r.status_code == 404


@pytest.mark.parametrize("method, path, body, status", [
    ("POST", "/unmatched/1.2.3/resolve", b"not json", 400),
    ("POST", "/unmatched/1.2.3/resolve", b"{}", 400),
    ("POST", "/unmatched/1.2.3/resolve", b'{"exam": 5}', 400),
    ("POST", "/unmatched/1.2.3/resolve", b'{"exam": null}', 404),
    ("POST", "/merges/abc/undo", b"", 400),
    ("POST", "/merges/999/undo", b"", 404),
    ("PUT", "/body-parts", b'{"exam_item": "x", "body_part": "CHEST; DROP"}', 400),
    ("PUT", "/body-parts", b'{"exam_item": 1, "body_part": "CHEST"}', 400),
    ("POST", "/sources/nope/run", b"", 404),
    ("POST", "/sources/ris/refresh", b'{"patient_id": ""}', 400),
    ("POST", "/sources/ris/refresh", b'{"patient": "P1"}', 400),
    ("POST", "/sources/nope/refresh", b'{"patient_id": "P1"}', 404),
    ("GET", "/exams/NOPE", b"", 404),
    ("GET", "/exams", b"", 400),
])
def test_bad_requests_are_4xx_with_a_reason(srv: YunyingServer, method: str, path: str, body: bytes,
                                            status: int) -> None:
    r = httpx.request(method, srv.http_url + "/api/records" + path, content=body,
                      headers={**srv.headers, "Content-Type": "application/json"})
    assert r.status_code == status and r.json()["error"], (r.status_code, r.text)


def test_the_matching_page_on_a_phone(srv: YunyingServer, open_page: Any) -> None:  # noqa: F811
    study = generate_uid()
    stow(srv, instance("P0003", study, accession="", date="20240101"))
    assert httpx.post(srv.http_url + "/api/records/match", headers=srv.headers).status_code == 200
    p = open_page(**PHONE)
    page = p.page
    page.goto(f"{srv.http_url}/admin/matching/?lang=zh-CN#access_token={srv.api_key}")
    page.wait_for_selector("#queue li")
    assert study in page.locator("#queue").inner_text()
    page.fill("#queue li input[name=q]", "E00002")
    page.click("#queue li form button")
    page.wait_for_selector("#queue li .choices button")
    page.click("#queue li .choices button")
    page.wait_for_function("document.querySelector('#message').textContent === '已匹配'")
    assert httpx.get(srv.http_url + "/api/records/exams/E00002", headers=srv.headers).json()["study_uid"] == study
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert page.locator("header h1").inner_text() == "Images and exams"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not p.errors, (p.errors, p.failed)


def test_the_matching_page_without_a_token_goes_to_the_login_page(srv: YunyingServer, open_page: Any) -> None:  # noqa: F811
    p = open_page(**PHONE)
    p.page.goto(f"{srv.http_url}/admin/matching/")
    p.page.wait_for_url(lambda url: "/login?" in url)  # its redirect URI is registered: the provider accepts it
