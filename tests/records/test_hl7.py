"""HL7 v2 over MLLP (issue 15 part 3): a real MLLP client (python-hl7's MLLPClient) against the
listener; AA / AE / AR with reasons; MSH-18 character sets; nothing half-applied."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient
from sqlalchemy import Table, func, select

import yunying.records.schema as t
from tests.records import hl7_messages as m
from tests.records.conftest import id_card
from yunying.records.hl7in import Hl7Handler
from yunying.records.mllp import MllpListener
from yunying.records.store import RecordStore, Where


@pytest.fixture
def listener(records: RecordStore) -> Iterator[MllpListener]:
    lst = MllpListener(Hl7Handler(records, Where("h1", "HIS1", "hl7")), "127.0.0.1", 0)
    lst.start()
    yield lst
    lst.stop()


def send(lst: MllpListener, text: str | bytes, encoding: str = "utf-8") -> hl7.Message:
    with MLLPClient("127.0.0.1", lst.port, encoding) as client:
        raw = client.send_message(text if isinstance(text, bytes) else text.encode(encoding))
    return hl7.parse(raw.strip(b"\x0b\x1c\r").decode(encoding))


def msa(ack: hl7.Message) -> tuple[str, str, str]:
    seg = ack.segment("MSA")
    return str(seg[1]), str(seg[2]), ack.unescape(str(seg[3])) if len(seg) > 3 else ""


def count(records: RecordStore, table: Table) -> int:
    with records.store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_adt_order_result_are_applied(listener: MllpListener, records: RecordStore) -> None:
    assert msa(send(listener, m.adt())) == ("AA", "M1", "")
    assert msa(send(listener, m.orm()))[0] == "AA"
    assert msa(send(listener, m.oru()))[0] == "AA"
    assert msa(send(listener, m.adt("A08", "M2", name="张^三丰")))[0] == "AA"  # the latest update wins
    exam = records.exam("h1", "ACC001")
    assert exam is not None
    p = exam["patient"]
    assert (p["patient_id"], p["issuer"], p["name"], p["sex"], p["birth_date"]) == ("P001", "HIS1", "张三丰", "F", "19491231")
    assert p["id_card"] == id_card() and p["phone"] == "13800138000" and "朝阳区" in p["address"]
    assert (exam["exam_type"], exam["exam_item"], exam["request"], exam["scheduled"]) == (
        "CT", "胸部CT平扫", "咳嗽两周", "20260301130000")
    r = exam["report"]
    assert (r["findings"], r["conclusion"], r["reporting_doctor"], r["reviewing_doctor"], r["status"]) == (
        "双肺纹理清晰。", "未见明显异常。", "李医生", "王主任", "F")
    assert r["has_pdf"] and r["reviewed_at"] == "20260301150000"
    kinds = {(v["kind"], v["number"], v["bed"]) for v in exam["visits"]}
    assert ("inpatient", "ZY001", "12") in kinds and ("outpatient", "MZ9", "") in kinds
    assert count(records, t.patients) == 1


def test_gb18030_message_and_ack(listener: MllpListener, records: RecordStore) -> None:
    ack = send(listener, m.adt(charset="GB 18030-2000", name="欧阳^娜娜"), "gb18030")
    assert msa(ack)[0] == "AA" and str(ack.segment("MSH")[18]) == "GB 18030-2000"
    with records.store.engine.connect() as conn:
        assert conn.execute(select(t.patients.c.name)).scalar_one() == "欧阳娜娜"


@pytest.mark.parametrize("message, code, says", [
    (m.adt(charset="KLINGON"), "AR", "MSH-18"),
    (m.adt(charset="UNICODE UTF-8").encode("gb18030"), "AR", "not valid utf-8"),
    (m.adt("A99"), "AR", "ADT^A99 is not supported"),
    (m.adt().replace("ADT^A01^ADT_A01", "XYZ^Z01"), "AR", "XYZ^Z01 is not supported"),
    (m.adt().replace("|2.5|", "|3.0|"), "AR", "MSH-12"),
    ("\r".join(m.adt().split("\r")[:2]) + "\r", "AE", "PID segment required"),
    ("\r".join(s for s in m.orm().split("\r") if not s.startswith("OBR")), "AE", "OBR segment required"),
    (m.adt(pid=""), "AE", "PID-3"),
    (m.adt(card=id_card()[:17] + ("1" if id_card()[17] != "1" else "2")), "AE", "check digit"),
    (m.adt().replace("|19491231|F|", "|19491331|F|"), "AE", "birth_date"),
    ("\r".join(s for s in m.merge("A40", "X1", "P2", "P1").split("\r") if not s.startswith("MRG")), "AE", "MRG"),
])
def test_bad_messages_are_refused_with_a_reason_and_change_nothing(
        listener: MllpListener, records: RecordStore, message: str | bytes, code: str, says: str) -> None:
    ack = send(listener, message)
    got, _control, reason = msa(ack)
    assert got == code and says.lower() in reason.lower()
    assert str(ack.segment("ERR")[3][0][0]) in {"100", "101", "102", "200", "201", "203", "207"}
    assert count(records, t.patients) == 0 and count(records, t.exams) == 0
    assert id_card() not in reason  # a reason never quotes the value


def test_not_hl7_at_all_gets_ar(listener: MllpListener, records: RecordStore) -> None:
    ack = send(listener, b"hello, is this the PACS?")
    assert msa(ack)[0] == "AR" and "MSH" in msa(ack)[2]


def test_messages_are_logged_without_content(listener: MllpListener, records: RecordStore) -> None:
    send(listener, m.adt())
    send(listener, m.adt("A99", "M9"))
    with records.store.engine.connect() as conn:
        rows = conn.execute(select(t.messages).order_by(t.messages.c.id)).all()
    assert [(r.control_id, r.event, r.ack) for r in rows] == [("M1", "ADT^A01", "AA"), ("M9", "ADT^A99", "AR")]
    assert all("张" not in (r.reason or "") and "P001" not in (r.reason or "") for r in rows)


def test_one_connection_many_messages(listener: MllpListener, records: RecordStore, tmp_path: Path) -> None:
    with MLLPClient("127.0.0.1", listener.port) as client:
        for i in range(20):
            raw = client.send_message(m.adt(control=f"C{i}", pid=f"P{i}").encode())
            assert b"MSA|AA|C%d" % i in raw
    assert count(records, t.patients) == 20


def test_a_broken_frame_closes_only_that_connection(listener: MllpListener, records: RecordStore) -> None:
    import socket
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        s.sendall(b"no start block\x1c\r")
        assert s.recv(100) == b""  # closed, no answer
    assert msa(send(listener, m.adt()))[0] == "AA"  # the listener goes on


def test_a_sender_outside_hl7_allow_is_disconnected_unanswered(records: RecordStore) -> None:
    lst = MllpListener(Hl7Handler(records, Where("h1", "HIS1", "hl7")), "127.0.0.1", 0, allow=["10.9.0.0/16"])
    lst.start()
    try:
        with MLLPClient("127.0.0.1", lst.port) as client:
            try:
                answer = client.send_message(m.adt().encode())
            except ConnectionResetError:  # closed before or while the message arrived
                answer = b""
        assert answer == b"" and lst.refused == 1 and count(records, t.patients) == 0
    finally:
        lst.stop()
