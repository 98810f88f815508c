"""The web-service variant of the database collector: a hospital's JSON endpoint polled with
the same mapping and watermark (a real HTTP server on loopback, httpx as the client)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from tests.records.conftest import hospital_service, id_card
from yunying.records.collector import Collector
from yunying.records.mapping import parse_sources
from yunying.records.store import RecordStore
from yunying.records.webservice import reader_for

ROWS = [{"examNo": f"W{i:03d}", "patientId": f"Q{i % 3}", "name": "李四", "sex": "男", "birth": "1949-12-31",
         "idNo": id_card(), "modality": "MR", "item": "头颅MR平扫", "updated": f"2026-03-01T08:{i:02d}:00"}
        for i in range(7)]
MAPPING = """
[[sources]]
name = "his-ws"
kind = "webservice"
url = "{url}"
watermark = "updated"
key = "examNo"
batch = 3
hospital = "h1"
token_env = "RECORDS_TEST_TOKEN"
[sources.columns]
patient_id = "patientId"
name = "name"
sex = "sex"
birth_date = "birth"
id_card = "idNo"
accession = "examNo"
exam_type = "modality"
exam_item = "item"
"""


class Hospital(BaseHTTPRequestHandler):
    mode = "ok"
    seen_auth: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Hospital.seen_auth.append(self.headers.get("Authorization", ""))
        if Hospital.mode == "down":
            self.send_response(503)
            self.end_headers()
            return
        if Hospital.mode == "garbage":
            body = b"<html>maintenance</html>"
        else:
            q = parse_qs(urlparse(self.path).query)
            if "patient_id" in q:
                body = json.dumps([r for r in ROWS if r["patientId"] == q["patient_id"][0]]).encode()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body)
                return
            after = (q.get("after", [""])[0], q.get("after_key", [""])[0])
            rows = [r for r in ROWS if (r["updated"], r["examNo"]) > after] if q.get("after") else ROWS
            body = json.dumps({"rows": rows[:int(q["limit"][0])]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    Hospital.mode = "ok"
    with hospital_service(Hospital) as url:
        yield url


def collector(url: str, records: RecordStore) -> Collector:
    (source,) = parse_sources(MAPPING.format(url=url))
    return Collector(source, records, reader_for(source))


def test_polls_in_batches_and_resumes(endpoint: str, records: RecordStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECORDS_TEST_TOKEN", "his-secret")
    col = collector(endpoint, records)
    assert col.run(max_batches=1).rows == 3
    assert collector(endpoint, records).run().rows == 4  # a new collector goes on from the saved watermark
    assert col.run().rows == 0
    exam = records.exam("h1", "W006")
    assert exam is not None and exam["patient"]["sex"] == "M" and exam["patient"]["birth_date"] == "19491231"
    assert Hospital.seen_auth[-1] == "Bearer his-secret"


@pytest.mark.parametrize("mode, says", [("down", "answered 503"), ("garbage", "did not answer JSON")])
def test_a_failing_endpoint_changes_nothing(endpoint: str, records: RecordStore, mode: str, says: str) -> None:
    Hospital.mode = mode
    result = collector(endpoint, records).run()
    assert result.rows == 0 and says in result.error
    assert records.exam("h1", "W000") is None


def test_an_unreachable_endpoint(records: RecordStore) -> None:
    from benchmarks.net import free_port
    result = collector(f"http://127.0.0.1:{free_port()}/x", records).run()
    assert "cannot reach" in result.error


def test_refresh_of_one_patient(endpoint: str, records: RecordStore) -> None:
    result = collector(endpoint, records).refresh_patient("Q1")
    assert (result.rows, result.error) == (2, "")  # W001 and W004
    assert records.exam("h1", "W004") is not None and records.exam("h1", "W000") is None
