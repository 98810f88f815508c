"""What the master index is told about a patient record, from any system."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from index.extract import issuer_of
from index.model import Origin
from yunying.records import idcard

DA = re.compile(r"\d{8}")


@dataclass(frozen=True)
class PatientFacts:
    """One system's record of a patient; the coordinator wires `yunying.records`' on_patient hook
    to `PatientIndex.observe` with these."""

    source: str  # the system: "index" (stored studies), "his", "ris", "hl7" ...
    issuer: str  # assigning authority of patient_id (IssuerOfPatientID, or the hospital's system)
    patient_id: str
    hospital: str = ""
    name: str = ""
    sex: str = ""  # M | F | O | ""
    birth_date: str = ""  # YYYYMMDD
    id_number: str = ""  # 18-digit resident ID number, when known
    phone: str = ""

    def cleaned(self) -> PatientFacts:
        """Facts with malformed optional values dropped (a bad birth date is no birth date)."""
        if any("\x00" in v for v in (self.source, self.issuer, self.patient_id, self.hospital, self.name,
                                      self.id_number, self.phone)):
            return PatientFacts(self.source, "", "")  # refused by observe: PostgreSQL keeps no NUL
        sex = self.sex.strip().upper()[:1]
        birth = self.birth_date.strip().replace("-", "")
        return PatientFacts(self.source.strip()[:64], self.issuer.strip()[:200], self.patient_id.strip()[:64],
                            self.hospital.strip()[:64], self.name.strip()[:200],
                            sex if sex in ("M", "F", "O") else "", birth if DA.fullmatch(birth) else "",
                            re.sub(r"\s+", "", self.id_number).upper(), self.phone.strip()[:40])


def _text(js: dict[str, Any], tag: str) -> str:
    value = (js.get(tag, {}).get("Value") or [""])[0]
    if isinstance(value, dict):  # PN: the ideographic form (Chinese characters) first
        return str(value.get("Ideographic") or value.get("Alphabetic") or "")
    return str(value)


def id_number_in(js: dict[str, Any]) -> str:
    """A resident ID number the header carries: PatientID itself (many Chinese hospitals use
    it as such), or an Other Patient IDs item (0010,1002) whose value checks."""
    candidates = [_text(js, "00100020")]
    for item in js.get("00101002", {}).get("Value") or []:
        candidates.append(_text(item, "00100020"))
    return next((c for c in candidates if idcard.is_valid(c)), "")


def fingerprint(js: dict[str, Any], origin: Origin) -> tuple[int, int] | None:
    """(hash of the patient's key, hash of everything its facts are made of) without building
    them: the feeder's per-instance check (issue 9: an instance of a patient already queued with
    the same facts costs this and one dict lookup). Equal inputs make equal `facts_from_json`;
    None without a PatientID, as there."""
    patient_id = _text(js, "00100020")
    if not patient_id:
        return None
    issuer = issuer_of(js, origin.institution, origin.source)
    others = js.get("00101002")
    return hash((issuer, patient_id)), hash((issuer, patient_id, origin.hospital, _text(js, "00100010"),
                                            _text(js, "00100040"), _text(js, "00100030"), _text(js, "00102154"),
                                            tuple(_text(item, "00100020") for item in others.get("Value") or ())
                                            if others else ()))


def facts_from_json(js: dict[str, Any], origin: Origin) -> PatientFacts | None:
    """The patient of a stored instance (DICOM JSON) as the index qualifies it; None without a PatientID."""
    patient_id = _text(js, "00100020")
    if not patient_id:
        return None
    return PatientFacts(source="index", issuer=issuer_of(js, origin.institution, origin.source),
                        patient_id=patient_id, hospital=origin.hospital, name=_text(js, "00100010"),
                        sex=_text(js, "00100040"), birth_date=_text(js, "00100030"),
                        id_number=id_number_in(js), phone=_text(js, "00102154"))
