"""The delivery console's exam search, per-exam upload status, Excel exports and the patients'
access log (issue 14 part 9). The operator sees the exams of their hospital(s): the index search
is scoped by the caller's visibility; a phone number is looked up through its blind index only."""
from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from index.errors import InvalidQueryValue
from index.parse import parse_match
from index.query import Match, Query, StudyScope
from yunying.archive import Archive
from yunying.audit.export import _safe_cell
from yunying.auth.errors import InvalidRequest
from yunying.auth.store import Store
from yunying.portal.console import REPORT_CLASSES
from yunying.portal.keyed import pseudonym
from yunying.portal.notify import notifications
from yunying.portal.patients import switched_off
from yunying.portal.schema import bindings, exams
from yunying.portal.verify import phone_account

RETURNED = {"00101010", "00100030", "00380010", "00081030", "00201206", "00201208", "00080061", "00080020", "00100021"}
COLUMNS = ("date", "accession", "name", "patient_id", "sex", "age", "visit", "modalities", "body_parts", "description",
           "hospital", "series", "images", "reports", "released", "qr", "bound", "delivery_off", "notified", "study")


@dataclass(frozen=True)
class Filters:
    """What the operator searches by; every field optional."""

    accession: str = ""
    name: str = ""
    sex: str = ""
    age: str = ""  # years: "45" or a range "40-50"
    visit: str = ""  # AdmissionID (the visit number)
    modality: str = ""
    body_part: str = ""
    date: str = ""  # YYYYMMDD or YYYYMMDD-YYYYMMDD

    def matches(self) -> list[Match]:
        out = []
        for name, tag, value in (("accession", "00080050", self.accession), ("sex", "00100040", self.sex.upper()),
                                 ("modality", "00080061", self.modality.upper()),
                                 ("date", "00080020", self.date.replace("-", "", 2) if len(self.date) == 10
                                  else self.date)):
            if value:
                out.append(match(name, tag, value))
        if self.name:
            out.append(name_match(self.name))
        return out

    def ages(self) -> tuple[int, int] | None:
        if not self.age:
            return None
        m = re.fullmatch(r"\s*(\d{1,3})\s*(?:-\s*(\d{1,3})\s*)?", self.age)
        if m is None:
            raise InvalidRequest("age: years, or a range like 40-50")
        return int(m[1]), int(m[2] or m[1])


def match(name: str, tag: str, value: str) -> Match:
    """The index's match for a console field; a malformed value is a 400 naming the field."""
    try:
        return parse_match(tag, value)
    except InvalidQueryValue as exc:
        raise InvalidRequest(f"{name}: {exc.reason}") from None


def name_match(name: str) -> Match:
    return match("name", "00100010", f"*{name.strip().replace('*', '')}*")  # any part of the name


def _v(js: dict[str, Any], tag: str) -> Any:
    value = (js.get(tag, {}).get("Value") or [None])[0]
    if isinstance(value, dict):  # a person name: the ideographic form when there is one
        return value.get("Ideographic") or value.get("Alphabetic") or ""
    return value


def age_years(js: dict[str, Any]) -> int | None:
    """PatientAge (nnnY/M/W/D), else from the birth date and the study date."""
    age = str(_v(js, "00101010") or "")
    if re.fullmatch(r"\d{3}[YMWD]", age):
        n, unit = int(age[:3]), age[3]
        return n if unit == "Y" else 0
    birth, date = str(_v(js, "00100030") or ""), str(_v(js, "00080020") or "")
    if len(birth) == 8 and len(date) == 8 and birth.isdigit() and date.isdigit():
        return int(date[:4]) - int(birth[:4]) - (1 if date[4:] < birth[4:] else 0)
    return None


def _body_parts(archive: Archive, studies: list[str], scope: StudyScope) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {s: set() for s in studies}
    if studies:
        query = Query("SERIES", [Match("0020000D", "list", tuple(studies))], includefields={"00180015"}, scope=scope)
        for js in archive.search(query):
            part = _v(js, "00180015")
            if part:
                out.setdefault(_v(js, "0020000D"), set()).add(str(part))
    return out


def upload_status(archive: Archive, study: str) -> dict[str, int]:
    """Images (and their series) and reports received for an exam; released = VERIFIED reports."""
    images, series, reports, released = 0, set(), 0, 0
    for row in archive.instances(study):
        if row.sop_class in REPORT_CLASSES:
            reports += 1
            flag = (archive.read_json(row).get("0040A493", {}).get("Value") or [""])[0]
            released += str(flag).upper() == "VERIFIED"
        else:
            images += 1
            series.add(row.series)
    return {"series": len(series), "images": images, "reports": reports, "released": released}


def _portal_state(store: Store, studies: list[str]) -> dict[str, dict[str, Any]]:
    e = exams.c
    q = (select(e.study_uid, e.delivery_off, func.count(func.distinct(bindings.c.account_id)).label("bound"),
                func.count(func.distinct(notifications.c.report_sop)).label("notified"))
         .outerjoin(bindings, bindings.c.exam_id == e.id)
         .outerjoin(notifications, (notifications.c.exam_id == e.id) & (notifications.c.status == "sent"))
         .where(e.study_uid.in_(studies)).group_by(e.study_uid, e.delivery_off))
    with store.engine.connect() as conn:
        return {r.study_uid: {"qr": True, "bound": r.bound > 0, "delivery_off": bool(r.delivery_off),
                              "notified": r.notified} for r in conn.execute(q)}


def search(archive: Archive, store: Store, filters: Filters, scope: StudyScope, limit: int = 100) -> list[dict[str, Any]]:
    """The exams matching every filter, in the index's order, at most `limit`."""
    ages = filters.ages()
    wanted_parts: set[str] | None = None
    if filters.body_part:
        query = Query("SERIES", [match("body_part", "00180015", filters.body_part.upper())], scope=scope)
        wanted_parts = {_v(js, "0020000D") for js in archive.search(query)}
    found = []
    for js in archive.search(Query("STUDY", filters.matches(), includefields=set(RETURNED), scope=scope)):
        study = _v(js, "0020000D")
        if wanted_parts is not None and study not in wanted_parts:
            continue
        age = age_years(js)
        if ages is not None and (age is None or not ages[0] <= age <= ages[1]):
            continue
        if filters.visit and str(_v(js, "00380010") or "") != filters.visit.strip():
            continue
        found.append((study, js, age))
        if len(found) >= limit:
            break
    uids = [s for s, _, _ in found]
    parts, portal = _body_parts(archive, uids, scope), _portal_state(store, uids)
    patients_off = switched_off(store)
    out = []
    for study, js, age in found:
        owner = archive.owner(study)
        state = portal.get(study, {"qr": False, "bound": False, "delivery_off": False, "notified": 0})
        patient_off = (_v(js, "00100021") or "", _v(js, "00100020") or "") in patients_off
        state = state | {"patient_off": patient_off} | ({"delivery_off": True} if patient_off else {})  # stored since too
        out.append({"study": study, "date": _v(js, "00080020") or "", "accession": _v(js, "00080050") or "",
                    "name": _v(js, "00100010") or "", "patient_id": _v(js, "00100020") or "",
                    "issuer": _v(js, "00100021") or "", "sex": _v(js, "00100040") or "", "age": age,
                    "visit": _v(js, "00380010") or "", "modalities": js.get("00080061", {}).get("Value") or [],
                    "body_parts": sorted(parts.get(study, ())), "description": _v(js, "00081030") or "",
                    "hospital": owner[0] if owner else ""}
                   | upload_status(archive, study) | state)
    return out


def access_studies(archive: Archive, scope: StudyScope, name: str = "", accession: str = "") -> list[str]:
    """The studies a name or an exam number names (for the access log)."""
    matches = []
    if accession:
        matches.append(match("accession", "00080050", accession))
    if name:
        matches.append(name_match(name))
    if not matches:
        return []
    return [_v(js, "0020000D") for js in archive.search(Query("STUDY", matches, limit=200, scope=scope))]


def phone_principals(store: Store, key: bytes, phone: str) -> tuple[list[str], list[str]]:
    """(account ids, studies) of a phone, found by its blind index: the patient who verified it,
    and the exams recorded with it."""
    ph = pseudonym(key, "phone", phone)
    with store.engine.connect() as conn:
        studies = list(conn.execute(select(exams.c.study_uid).where(exams.c.phone_hash == ph)).scalars())
    return [phone_account(ph)], studies


def xlsx(sheets: dict[str, tuple[Iterable[str], Iterable[Iterable[Any]]]]) -> bytes:
    """A workbook (openpyxl, write-only) with one sheet per entry: header row, then rows."""
    from openpyxl import Workbook  # type: ignore[import-untyped]

    wb = Workbook(write_only=True)
    for title, (header, rows) in sheets.items():
        ws = wb.create_sheet(title)
        ws.append(list(header))
        for row in rows:
            ws.append([_safe_cell(", ".join(v) if isinstance(v, list) else v) for v in row])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def exams_xlsx(rows: list[dict[str, Any]]) -> bytes:
    return xlsx({"exams": (COLUMNS, ([r[c] for c in COLUMNS] for r in rows))})


def stats_xlsx(stats: dict[str, Any]) -> bytes:
    def table(what: str, key: str, extra: tuple[str, ...]) -> tuple[Iterable[str], Iterable[Iterable[Any]]]:
        exams = stats[f"per_{key}"]
        return ((what, "exams", *extra),
                ([k, n, *(stats[f"{e}_per_{key}"].get(k, 0) for e in extra)] for k, n in sorted(exams.items())))
    return xlsx({
        "totals": (("exams", "images", "reports"), [[stats["exams"], stats["images"], stats["reports"]]]),
        "per_day": table("day", "day", ("images", "reports")),
        "per_hospital": table("hospital", "hospital", ("images", "reports")),
        "per_modality": table("modality", "modality", ("images",)),
        "storage": (("day", "dicom_bytes", "total_bytes"),
                    ([h["day"], h["dicom_bytes"], h["total_bytes"]] for h in stats["storage"]["history"]))})
