"""The SOAP variant of the web-service collector (issue 15 part 2): a hospital's SOAP service
(WSDL, document/literal) on loopback, read by zeep with the same mapping and watermark as the
database and JSON sources; faults, garbage and an unreachable service change nothing."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from xml.sax.saxutils import escape

import pytest

from tests.records.conftest import hospital_service, id_card
from yunying.records.collector import Collector
from yunying.records.mapping import parse_sources
from yunying.records.store import RecordStore
from yunying.records.webservice import reader_for
from yunying.settings import SettingError

NS = "urn:his:exams"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
FIELDS = ("examNo", "patientId", "name", "sex", "birth", "idNo", "modality", "item", "updated")
ROWS = [{"examNo": f"S{i:03d}", "patientId": f"P{i % 3}", "name": "王五", "sex": "F", "birth": "1949-12-31",
         "idNo": id_card(), "modality": "CT", "item": "胸部CT平扫", "updated": f"2026-03-02T09:{i:02d}:00"}
        for i in range(7)]
MAPPING = """
[[sources]]
name = "his-soap"
kind = "soap"
url = "{url}?wsdl"
operation = "GetExams"
patient_operation = "GetPatientExams"
watermark = "updated"
key = "examNo"
batch = 3
hospital = "h1"
token_env = "RECORDS_SOAP_TOKEN"
[sources.arguments]
after = "since"
after_key = "sinceKey"
limit = "max"
patient_id = "patientId"
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


def wsdl(location: str) -> str:
    exam = "".join(f'<xs:element name="{f}" type="xs:string"/>' for f in FIELDS)

    def op(name: str, args: str) -> str:
        return (f'<xs:element name="{name}"><xs:complexType><xs:sequence>{args}</xs:sequence></xs:complexType>'
                f'</xs:element><xs:element name="{name}Response"><xs:complexType><xs:sequence>'
                '<xs:element name="exam" type="tns:Exam" minOccurs="0" maxOccurs="unbounded"/>'
                "</xs:sequence></xs:complexType></xs:element>")

    ops = ("GetExams", "GetPatientExams")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
  xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="{NS}" targetNamespace="{NS}" name="ExamService">
 <types><xs:schema targetNamespace="{NS}" elementFormDefault="qualified">
  <xs:complexType name="Exam"><xs:sequence>{exam}</xs:sequence></xs:complexType>
  {op("GetExams", '<xs:element name="since" type="xs:string" minOccurs="0"/>'
                  '<xs:element name="sinceKey" type="xs:string" minOccurs="0"/><xs:element name="max" type="xs:int"/>')}
  {op("GetPatientExams", '<xs:element name="patientId" type="xs:string"/><xs:element name="max" type="xs:int"/>')}
 </xs:schema></types>
 {"".join(f'<message name="{o}In"><part name="parameters" element="tns:{o}"/></message>'
          f'<message name="{o}Out"><part name="parameters" element="tns:{o}Response"/></message>' for o in ops)}
 <portType name="ExamPort">{"".join(f'<operation name="{o}"><input message="tns:{o}In"/><output message="tns:{o}Out"/>'
                                    '</operation>' for o in ops)}</portType>
 <binding name="ExamBinding" type="tns:ExamPort">
  <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
  {"".join(f'<operation name="{o}"><soap:operation soapAction="{NS}#{o}"/><input><soap:body use="literal"/></input>'
           '<output><soap:body use="literal"/></output></operation>' for o in ops)}
 </binding>
 <service name="ExamService"><port name="ExamPort" binding="tns:ExamBinding">
  <soap:address location="{location}"/></port></service>
</definitions>"""


def envelope(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><e:Envelope xmlns:e="{SOAP_ENV}"><e:Body>{body}'
            "</e:Body></e:Envelope>").encode()


class Hospital(BaseHTTPRequestHandler):
    mode = "ok"
    location = ""  # where the service answers (the WSDL's soap:address)
    seen_auth: ClassVar[list[str]] = []
    calls: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:  # the WSDL
        self._answer(200, wsdl(Hospital.location).encode())

    def do_POST(self) -> None:
        Hospital.seen_auth.append(self.headers.get("Authorization", ""))
        request = ET.fromstring(self.rfile.read(int(self.headers["Content-Length"])))
        call = request.find(f"{{{SOAP_ENV}}}Body/*")
        assert call is not None
        args = {el.tag.split("}")[1]: el.text or "" for el in call}
        Hospital.calls.append(args)
        if Hospital.mode == "fault":
            self._answer(500, envelope("<e:Fault><faultcode>e:Server</faultcode>"
                                       "<faultstring>patient 张三 locked</faultstring></e:Fault>"))
            return
        if Hospital.mode == "garbage":
            self._answer(200, b"<html>maintenance</html>")
            return
        op = call.tag.split("}")[1]
        if op == "GetPatientExams":
            rows = [r for r in ROWS if r["patientId"] == args["patientId"]]
        else:
            after = (args.get("since", ""), args.get("sinceKey", ""))
            rows = [r for r in ROWS if (r["updated"], r["examNo"]) > after] if after[0] else ROWS
            rows = rows[:int(args["max"])]
        exams = "".join("<t:exam>" + "".join(f"<t:{f}>{escape(r[f])}</t:{f}>" for f in FIELDS) + "</t:exam>"
                        for r in rows)
        self._answer(200, envelope(f'<t:{op}Response xmlns:t="{NS}">{exams}</t:{op}Response>'))

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    Hospital.mode = "ok"
    Hospital.calls.clear()
    with hospital_service(Hospital) as url:
        Hospital.location = url
        yield url


def collector(url: str, records: RecordStore) -> Collector:
    (source,) = parse_sources(MAPPING.format(url=url))
    return Collector(source, records, reader_for(source))


def test_polls_in_batches_by_watermark_and_resumes(endpoint: str, records: RecordStore,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECORDS_SOAP_TOKEN", "his-soap-secret")
    col = collector(endpoint, records)
    assert col.run(max_batches=1).rows == 3
    assert Hospital.calls[0] == {"max": "3"}  # the first call asks from the beginning
    assert collector(endpoint, records).run().rows == 4  # a new collector goes on from the saved watermark
    assert {"since": "2026-03-02T09:02:00", "sinceKey": "S002", "max": "3"} in Hospital.calls
    assert col.run().rows == 0
    exam = records.exam("h1", "S006")
    assert exam is not None and exam["exam_item"] == "胸部CT平扫"
    assert exam["patient"]["sex"] == "F" and exam["patient"]["birth_date"] == "19491231"
    assert Hospital.seen_auth[-1] == "Bearer his-soap-secret"


def test_refresh_of_one_patient(endpoint: str, records: RecordStore) -> None:
    result = collector(endpoint, records).refresh_patient("P1")
    assert (result.rows, result.error) == (2, "")  # S001 and S004
    assert records.exam("h1", "S004") is not None and records.exam("h1", "S000") is None


@pytest.mark.parametrize("mode, says", [("fault", "answered a fault (e:Server)"), ("garbage", "does not fit")])
def test_a_failing_service_changes_nothing_and_quotes_nothing(endpoint: str, records: RecordStore, mode: str,
                                                              says: str) -> None:
    Hospital.mode = mode
    result = collector(endpoint, records).run()
    assert result.rows == 0 and says in result.error, result.error
    assert "张三" not in result.error  # the fault's text may name a patient: not repeated
    assert records.exam("h1", "S000") is None


def test_an_unreachable_service(records: RecordStore) -> None:
    from benchmarks.net import free_port
    result = collector(f"http://127.0.0.1:{free_port()}/x", records).run()
    assert result.rows == 0 and "cannot reach" in result.error, result.error


@pytest.mark.parametrize("change, says", [
    ('operation = "GetExams"', "operation"),
    ('after = "since"', "arguments"),
])
def test_a_bad_soap_mapping_is_refused_at_start(change: str, says: str) -> None:
    broken = MAPPING.replace(change, change.replace('"', '"1 bad', 1).replace("GetExams", "x").replace("since", "y"))
    with pytest.raises(SettingError, match=says):
        parse_sources(broken.format(url="http://127.0.0.1:1/x"))
