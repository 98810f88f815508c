"""HIS patient records reach the master index: an HL7 ADT over MLLP to a real server, through
yunying.records' on_patient event, links with the stored study of the same ID number."""
from __future__ import annotations

import socket
import time

import httpx
from pydicom.dataset import Dataset

from benchmarks.net import free_port
from tests.conftest import start_with_env
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.records.conftest import id_card
from tests.records.hl7_messages import adt


def mllp(port: int, message: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"\x0b" + message.encode() + b"\x1c\r")
        answer = b""
        while not answer.endswith(b"\x1c\r"):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def make_other_id(number: str) -> Dataset:
    item = Dataset()
    item.PatientID, item.TypeOfPatientID = number, "TEXT"
    return item


def test_an_adt_patient_joins_the_person_of_a_stored_study(tmp_path) -> None:
    port = free_port()
    srv = start_with_env(tmp_path / "data", YUNYING_HL7_PORT=str(port))
    try:
        ds = make_ct(patient_id="CT-77", name="Zhang^San")
        ds.IssuerOfPatientID = "PACS1"
        ds.OtherPatientIDsSequence = [make_other_id(id_card())]
        body, ctype = multipart(part10(ds))
        assert httpx.post(srv.dicomweb_url + "/studies", content=body,
                          headers={**srv.headers, "Content-Type": ctype}).status_code == 200
        assert b"MSA|AA" in mllp(port, adt(pid="P001"))
        deadline = time.monotonic() + 20
        with httpx.Client(base_url=srv.http_url + "/api/mpi", headers=srv.headers) as c:
            while True:
                found = {i["patient_id"]: i for i in c.get("/identities").json()}
                if {"P001", "CT-77"} <= set(found) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert found["P001"]["person"] == found["CT-77"]["person"] and found["P001"]["link"] == "id"
        assert found["P001"]["phone"].endswith("8000") and found["P001"]["name"] == "张三"
    finally:
        srv.stop()
