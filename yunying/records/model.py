"""One record as every source delivers it: a flat set of our fields, checked and normalised.

A database row (through a mapping), a web service's JSON object and an HL7 message all become a
`Record`; the store applies one in one transaction (patient, visit, exam, report).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from yunying.records.idcard import InvalidIdCard, parse_id_card

PATIENT_FIELDS = ("patient_id", "issuer", "name", "sex", "birth_date", "id_card", "phone", "address")
VISIT_FIELDS = ("outpatient_no", "inpatient_no", "social_security_no", "emergency_no", "bed", "department")
EXAM_FIELDS = ("accession", "exam_type", "exam_item", "body_part", "request", "status", "scheduled", "study_uid")
REPORT_FIELDS = ("findings", "conclusion", "reporting_doctor", "reported_at", "reviewing_doctor",
                 "reviewed_at", "report_status", "pdf_path", "pdf_blob")
FIELDS = PATIENT_FIELDS + VISIT_FIELDS + EXAM_FIELDS + REPORT_FIELDS
VISIT_KINDS = {"outpatient_no": "outpatient", "inpatient_no": "inpatient",
               "social_security_no": "social_security", "emergency_no": "emergency"}
LIMITS = {"name": 200, "bed": 32, "department": 100, "exam_type": 16, "exam_item": 200, "body_part": 64,
          "status": 32, "report_status": 32, "reporting_doctor": 100, "reviewing_doctor": 100,
          "pdf_path": 500, "study_uid": 64, "address": 500, "phone": 40}
SEX = {"M": "M", "F": "F", "O": "O", "U": "", "男": "M", "女": "F", "1": "M", "2": "F", "MALE": "M",
       "FEMALE": "F", "0": ""}


class RecordError(ValueError):
    """A record that cannot be stored; the reason names the field, never its value."""


@dataclass
class Record:
    """Checked values of our fields ("" when the source has none); pdf_blob is bytes."""

    values: dict[str, str] = field(default_factory=dict)
    pdf: bytes | None = None

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def has_any(self, names: tuple[str, ...]) -> bool:
        return any(self.values.get(n) for n in names)


def dicom_date(value: Any, name: str) -> str:
    """YYYYMMDD from a date, a datetime or text such as 2024-03-01 / 20240301."""
    if isinstance(value, (datetime, date)):
        return value.strftime("%Y%m%d")
    digits = re.sub(r"[-/.\s]", "", str(value))[:8]
    try:
        datetime.strptime(digits, "%Y%m%d")
    except ValueError:
        raise RecordError(f"{name}: not a date (YYYYMMDD or YYYY-MM-DD)") from None
    return digits


def dicom_datetime(value: Any, name: str) -> str:
    """YYYYMMDDHHMMSS (or a prefix of it) from a datetime or text."""
    if isinstance(value, datetime):
        return value.strftime("%Y%m%d%H%M%S")
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    digits = re.sub(r"[-/:.T\s]", "", str(value))
    digits = digits.split("+")[0][:14]
    if not re.fullmatch(r"\d{8}(\d{2}){0,3}", digits):
        raise RecordError(f"{name}: not a date and time (YYYYMMDD[HHMM[SS]])")
    dicom_date(digits[:8], name)
    return digits


def make_record(raw: dict[str, Any]) -> Record:
    """Check and normalise a mapping of our field names to source values (None / "" = absent)."""
    values: dict[str, str] = {}
    pdf = None
    for name, value in raw.items():
        if name not in FIELDS:
            raise RecordError(f"{name}: not one of our fields")
        if value is None or value == "":
            continue
        if name == "pdf_blob":
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise RecordError("pdf_blob: bytes expected")
            pdf = bytes(value)
            continue
        if isinstance(value, (bytes, bytearray)):
            raise RecordError(f"{name}: text expected, not bytes")
        if name == "birth_date":
            text = dicom_date(value, name)
        elif name in ("scheduled", "reported_at", "reviewed_at"):
            text = dicom_datetime(value, name)
        else:
            text = str(value).strip()
        if name == "sex":
            if text.upper() not in SEX:
                raise RecordError("sex: M, F, O, U (or 男/女) expected")
            text = SEX[text.upper()]
        if name == "id_card":
            try:
                text = parse_id_card(text).number
            except InvalidIdCard as exc:
                raise RecordError(str(exc)) from None
        if len(text) > LIMITS.get(name, 64 if name not in ("request", "findings", "conclusion") else 100_000):
            raise RecordError(f"{name}: too long")
        if text:
            values[name] = text
    if not values.get("patient_id"):
        raise RecordError("patient_id: required")
    card = values.get("id_card")
    if card and values.get("birth_date") and values["birth_date"] != parse_id_card(card).birth_date:
        raise RecordError("id_card: its birth date differs from birth_date")
    if values.keys() & set(REPORT_FIELDS) and not values.get("accession") or pdf and not values.get("accession"):
        raise RecordError("accession: required with a report")
    return Record(values, pdf)
