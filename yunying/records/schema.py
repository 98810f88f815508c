"""The record store's tables (component "records") on the app-state store (SQLAlchemy Core).

ID card numbers, phone numbers and addresses are kept sealed (`*_sealed`, yunying/pii.py) with
a blind index (`*_blind`) where they are looked up exactly. Times are integer Unix seconds;
clinical dates and times are DICOM-style strings (YYYYMMDD, YYYYMMDDHHMMSS).
"""
from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Connection

from yunying.auth.store import migration

meta = MetaData()

patients = Table(
    "rec_patients", meta,
    Column("id", String(32), primary_key=True),
    Column("hospital", String(64), nullable=False),
    Column("issuer", String(64), nullable=False),  # assigning authority of patient_id (design rule 6)
    Column("patient_id", String(64), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("sex", String(1), nullable=False, default=""),
    Column("birth_date", String(8), nullable=False, default=""),
    Column("id_card_sealed", Text),
    Column("id_card_blind", String(64)),
    Column("phone_sealed", Text),
    Column("phone_blind", String(64)),
    Column("address_sealed", Text),
    Column("merged_into", String(32)),  # rec_patients.id of the surviving record (HL7 A40)
    Column("source", String(64), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("updated_at", Integer, nullable=False),
    UniqueConstraint("hospital", "issuer", "patient_id"),
    Index("rec_patients_id_card", "id_card_blind"),
    Index("rec_patients_phone", "phone_blind"),
)
visits = Table(  # outpatient / inpatient / social-security visit numbers
    "rec_visits", meta,
    Column("id", String(32), primary_key=True),
    Column("hospital", String(64), nullable=False),
    Column("patient", String(32), nullable=False),  # rec_patients.id
    Column("kind", String(16), nullable=False),  # outpatient | inpatient | social_security | emergency
    Column("number", String(64), nullable=False),
    Column("bed", String(32), nullable=False, default=""),
    Column("department", String(100), nullable=False, default=""),
    Column("updated_at", Integer, nullable=False),
    UniqueConstraint("hospital", "kind", "number"),
)
exams = Table(  # an exam (order); accession = the hospital's exam number
    "rec_exams", meta,
    Column("id", String(32), primary_key=True),
    Column("hospital", String(64), nullable=False),
    Column("accession", String(64), nullable=False),
    Column("patient", String(32), nullable=False),
    Column("visit", String(32)),
    Column("exam_type", String(16), nullable=False, default=""),  # modality (CT, MR, US, ES ...)
    Column("exam_item", String(200), nullable=False, default=""),
    Column("body_part", String(64), nullable=False, default=""),
    Column("request", Text, nullable=False, default=""),
    Column("status", String(32), nullable=False, default=""),
    Column("scheduled", String(14), nullable=False, default=""),  # YYYYMMDD[HHMMSS]
    Column("study_uid", String(64)),  # set by matching
    Column("source", String(64), nullable=False),
    Column("updated_at", Integer, nullable=False),
    UniqueConstraint("hospital", "accession"),
    Index("rec_exams_patient", "patient"),
    Index("rec_exams_study", "study_uid"),
)
reports = Table(
    "rec_reports", meta,
    Column("exam", String(32), primary_key=True),  # rec_exams.id
    Column("findings", Text, nullable=False, default=""),
    Column("conclusion", Text, nullable=False, default=""),
    Column("reporting_doctor", String(100), nullable=False, default=""),
    Column("reported_at", String(14), nullable=False, default=""),
    Column("reviewing_doctor", String(100), nullable=False, default=""),
    Column("reviewed_at", String(14), nullable=False, default=""),
    Column("status", String(32), nullable=False, default=""),
    Column("pdf_path", String(500), nullable=False, default=""),
    Column("pdf", LargeBinary),
    Column("updated_at", Integer, nullable=False),
)
cursors = Table(  # where each collector stopped: its watermark, committed with the rows it covers
    "rec_cursors", meta,
    Column("source", String(64), primary_key=True),
    Column("watermark", JSON),  # {"type": "datetime" | "date" | "int" | "float" | "str", "value": ..., "key": ...}
    Column("last_run", Integer),
    Column("last_ok", Integer),
    Column("rows", Integer, nullable=False, default=0),
    Column("rejected", Integer, nullable=False, default=0),
    Column("errors", Integer, nullable=False, default=0),
    Column("last_error", String(500), nullable=False, default=""),
)
rejects = Table(  # rows a collector skipped, by key and reason (never the values)
    "rec_rejects", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("row_key", String(200), nullable=False),
    Column("reason", String(300), nullable=False),
    Column("at", Integer, nullable=False),
)
merges = Table(  # patient merges and identifier changes (HL7 A40 / A47), reversible
    "rec_merges", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hospital", String(64), nullable=False),
    Column("event", String(8), nullable=False),  # A40 | A47
    Column("surviving", String(32), nullable=False),  # rec_patients.id
    Column("merged", String(32), nullable=False),
    Column("moved", JSON, nullable=False),  # {"studies": {uid: prior patient attrs}, "exams": [...], "visits": [...], "old_id": ...}
    Column("control_id", String(64), nullable=False, default=""),
    Column("at", Integer, nullable=False),
    Column("undone_at", Integer),
    Column("undone_by", String(64)),
)
unmatched = Table(  # studies no exam could be found for: an operator resolves them
    "rec_unmatched", meta,
    Column("study_uid", String(64), primary_key=True),
    Column("hospital", String(64), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("candidates", JSON, nullable=False),  # rec_exams.id of ambiguous candidates
    Column("created_at", Integer, nullable=False),
    Column("checked_at", Integer, nullable=False),  # last sweep that looked: retried when exams changed since
    Column("resolved_at", Integer),
    Column("resolved_by", String(64)),
    Column("exam", String(32)),  # chosen exam, or NULL when dismissed
)
body_parts = Table(  # exam item -> DICOM BodyPartExamined (PS3.16 CID 4031), per hospital
    "rec_body_parts", meta,
    Column("hospital", String(64), primary_key=True),
    Column("exam_item", String(200), primary_key=True),
    Column("body_part", String(64), nullable=False),
)
messages = Table(  # HL7 messages processed: control id, event, outcome (no content)
    "rec_hl7", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender", String(200), nullable=False),
    Column("control_id", String(64), nullable=False),
    Column("event", String(16), nullable=False),
    Column("ack", String(2), nullable=False),
    Column("reason", String(300), nullable=False, default=""),
    Column("at", Integer, nullable=False),
    Index("rec_hl7_control", "sender", "control_id"),
)


@migration("records", 1)
def create_record_tables(conn: Connection) -> None:
    meta.create_all(conn)
