"""Database collectors (issue 15 part 2): a hospital view read incrementally through SQLAlchemy,
on SQLite and on PostgreSQL, mapped by a sources file; resumable, nothing applied twice."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Table, create_engine, func, select, text

import yunying.records.schema as t
from tests.records.conftest import KEYS, id_card
from yunying.auth.store import open_store
from yunying.records import events
from yunying.records.collector import Collector
from yunying.records.mapping import parse_sources
from yunying.records.store import RecordStore
from yunying.records.webservice import reader_for

MAPPING = """
[[sources]]
name = "ris"
url = "{url}"
table = "v_exams"
watermark = "updated_at"
key = "exam_no"
batch = {batch}
hospital = "h1"
issuer = "HIS1"
[sources.columns]
patient_id = "pat_id"
name = "pat_name"
sex = "pat_sex"
birth_date = "birth"
id_card = "id_no"
phone = "tel"
outpatient_no = "op_no"
inpatient_no = "ip_no"
bed = "bed_no"
accession = "exam_no"
exam_type = "modality"
exam_item = "item"
request = "request_text"
status = "state"
findings = "findings"
conclusion = "impression"
reporting_doctor = "report_dr"
reported_at = "report_time"
reviewing_doctor = "review_dr"
reviewed_at = "review_time"
pdf_blob = "pdf"
[sources.values.sex]
"1" = "M"
"2" = "F"
"""
T0 = datetime(2026, 3, 1, 8, 0, 0)


def hospital_db(url: str, n: int, same_time: bool = False) -> None:
    """The hospital's intermediate table and a view over it, with n exams."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE his_exams (exam_no VARCHAR(20) PRIMARY KEY, pat_id VARCHAR(20), "
                          "pat_name VARCHAR(50), pat_sex VARCHAR(2), birth DATE, id_no VARCHAR(20), "
                          "tel VARCHAR(20), op_no VARCHAR(20), ip_no VARCHAR(20), bed_no VARCHAR(10), "
                          "modality VARCHAR(8), item VARCHAR(50), request_text VARCHAR(200), state VARCHAR(10), "
                          "findings VARCHAR(500), impression VARCHAR(500), report_dr VARCHAR(20), "
                          "report_time TIMESTAMP, review_dr VARCHAR(20), review_time TIMESTAMP, pdf BYTEA, "
                          "updated_at TIMESTAMP)".replace("BYTEA", "BYTEA" if "postgresql" in url else "BLOB")))
        conn.execute(text("CREATE VIEW v_exams AS SELECT * FROM his_exams"))
        for i in range(n):
            add_exam(conn, i, T0 if same_time else T0 + timedelta(minutes=i))
    engine.dispose()


def add_exam(conn: Connection, i: int, when: datetime, card: str | None = None) -> None:
    conn.execute(text(
        "INSERT INTO his_exams VALUES (:exam_no, :pat_id, :name, :sex, :birth, :id_no, :tel, :op, :ip, :bed, "
        ":mod, :item, :req, :state, :findings, :imp, :dr, :rt, :rv, :rvt, :pdf, :upd)"), {
        "exam_no": f"E{i:05d}", "pat_id": f"P{i % 7:04d}", "name": "张三", "sex": "1" if i % 7 % 2 else "2",
        "birth": datetime(1949, 12, 31).date(), "id_no": card or id_card(), "tel": "13800138000",
        "op": f"MZ{i}", "ip": None, "bed": "12", "mod": "CT", "item": "胸部平扫", "req": "咳嗽两周",
        "state": "final", "findings": "双肺纹理清晰。", "imp": "未见异常。", "dr": "李医生",
        "rt": when, "rv": "王主任", "rvt": when + timedelta(minutes=5), "pdf": b"%PDF-1.4 test",
        "upd": when})


def collector(url: str, records: RecordStore, batch: int = 4) -> Collector:
    (source,) = parse_sources(MAPPING.format(url=url, batch=batch))
    return Collector(source, records, reader_for(source))


def count(records: RecordStore, table: Table) -> int:
    with records.store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def check_collects(url: str, records: RecordStore) -> None:
    hospital_db(url, 10)
    seen: list[events.ExamEvent] = []
    events.on_exam(seen.append)
    try:
        col = collector(url, records)
        first = col.run()
        assert (first.rows, first.rejected, first.error) == (10, 0, "")
        assert count(records, t.exams) == 10 and count(records, t.patients) == 7
        assert len(seen) == 10 and seen[0].accession == "E00000" and seen[0].hospital == "h1"
        assert col.run().rows == 0  # re-running stores nothing twice
        assert count(records, t.exams) == 10
        engine = create_engine(url)
        with engine.begin() as conn:  # a change and a new exam, later watermark
            add_exam(conn, 10, T0 + timedelta(hours=1))
            conn.execute(text("UPDATE his_exams SET state = 'amended', updated_at = :t WHERE exam_no = 'E00003'"),
                         {"t": T0 + timedelta(hours=2)})
        engine.dispose()
        assert col.run().rows == 2
        exam = records.exam("h1", "E00003")
        assert exam is not None and exam["status"] == "amended"
        assert exam["patient"]["id_card"] == id_card() and exam["patient"]["name"] == "张三"
        assert exam["patient"]["sex"] == "M" and exam["patient"]["birth_date"] == "19491231"
        assert exam["report"]["conclusion"] == "未见异常。" and exam["report"]["has_pdf"]
        assert exam["report"]["reported_at"].startswith("20260301")
        assert {"kind": "outpatient", "number": "MZ3", "bed": "12", "department": ""} in exam["visits"]
        with records.store.engine.connect() as conn:  # sealed at rest, found by the blind index
            raw = conn.execute(select(t.patients.c.id_card_sealed, t.patients.c.phone_sealed)).first()
        assert raw is not None and id_card() not in raw[0] and "13800138000" not in raw[1]
        assert len(records.patients_by_id_card(id_card().lower())) == 7
    finally:
        events.remove(seen.append)


def test_sqlite_view(records: RecordStore, tmp_path: Path) -> None:
    check_collects(f"sqlite:///{tmp_path / 'his.sqlite'}", records)


def test_postgresql_view_into_postgresql_store(pg_url: str, tmp_path: Path) -> None:
    """Hospital view and our app-state store both on PostgreSQL (separate schemas of one database)."""
    store = open_store(tmp_path / "data", pg_url)
    try:
        check_collects(pg_url, RecordStore(store, KEYS))
    finally:
        store.engine.dispose()


def test_many_rows_sharing_one_watermark_value(records: RecordStore, tmp_path: Path) -> None:
    """A batch boundary inside one watermark value skips nothing (ordered by watermark, key)."""
    url = f"sqlite:///{tmp_path / 'his.sqlite'}"
    hospital_db(url, 11, same_time=True)
    assert collector(url, records, batch=3).run().rows == 11
    assert count(records, t.exams) == 11


def test_resumes_after_a_kill_without_duplicates(records: RecordStore, tmp_path: Path) -> None:
    """Stopped after two batches (as by a kill between commits), a new collector goes on from there."""
    url = f"sqlite:///{tmp_path / 'his.sqlite'}"
    hospital_db(url, 10)
    applied: list[str] = []
    events.on_exam(lambda e: applied.append(e.accession))
    try:
        assert collector(url, records).run(max_batches=2).rows == 8
        assert collector(url, records).run().rows == 2  # a new process: the saved watermark
        assert sorted(applied) == [f"E{i:05d}" for i in range(10)]  # each once
    finally:
        events._exams.clear()


def test_view_disappears_mid_read(records: RecordStore, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'his.sqlite'}"
    hospital_db(url, 10)
    col = collector(url, records)
    assert col.run(max_batches=1).rows == 4
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP VIEW v_exams"))
    result = col.run()
    assert result.rows == 0 and "v_exams" in result.error and "no such table" in result.error
    assert count(records, t.exams) == 4  # nothing half-applied
    with records.store.engine.connect() as conn:
        cur = conn.execute(select(t.cursors)).one()
    assert cur.errors == 1 and cur.rows == 4 and "v_exams" in cur.last_error
    with engine.begin() as conn:  # the DBA puts it back: the collector goes on where it stopped
        conn.execute(text("CREATE VIEW v_exams AS SELECT * FROM his_exams"))
    engine.dispose()
    assert col.run().rows == 6 and count(records, t.exams) == 10


def test_wrong_check_digit_is_rejected_by_key_not_value(records: RecordStore, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'his.sqlite'}"
    hospital_db(url, 2)
    wrong = id_card()[:17] + ("0" if id_card()[17] != "0" else "1")
    engine = create_engine(url)
    with engine.begin() as conn:
        add_exam(conn, 2, T0 + timedelta(minutes=30), card=wrong)
    engine.dispose()
    result = collector(url, records).run()
    assert (result.rows, result.rejected) == (2, 1)
    with records.store.engine.connect() as conn:
        (reject,) = conn.execute(select(t.rejects)).all()
    assert reject.row_key == "E00002" and "check digit" in reject.reason and wrong not in reject.reason
    assert records.exam("h1", "E00002") is None


@pytest.mark.parametrize("bad, says", [
    (('name = "x"\nurl = "sqlite://"\ntable = "v; drop"\nwatermark = "u"\nkey = "k"\n[sources.columns]\n'
     'patient_id = "p"'), "table"),
    (('name = "x"\nurl = "sqlite://"\ntable = "v"\nwatermark = "u"\nkey = "k"\n[sources.columns]\n'
     'patient_id = "p"\nshoe_size = "s"'), "shoe_size"),
    ('name = "x"\ntable = "v"\nwatermark = "u"\nkey = "k"\n[sources.columns]\npatient_id = "p"', "url"),
    ('name = "x"\nurl = "sqlite://"\ntable = "v"\nwatermark = "u"\nkey = "k"\n[sources.columns]\nname = "n"',
     "patient_id"),
])
def test_bad_mappings_are_named(bad: str, says: str) -> None:
    from yunying.settings import SettingError
    with pytest.raises(SettingError, match=says):
        parse_sources("[[sources]]\n" + bad)


def test_refresh_of_one_patient_ignores_the_watermark(records: RecordStore, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'his.sqlite'}"
    hospital_db(url, 10)
    col = collector(url, records)
    result = col.refresh_patient("P0003")  # exams 3 and 10 % 7: E00003 only among 0-9
    assert (result.rows, result.error) == (1, "") and records.exam("h1", "E00003") is not None
    assert count(records, t.exams) == 1
    assert col.run().rows == 10  # the incremental run still reads everything from its position
    assert col.refresh_patient("NOBODY").rows == 0
