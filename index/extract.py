"""Deriving the index's columns and per-level attribute JSON from an instance's DICOM JSON."""
from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from index.keys import SERIES_ATTRS, is_patient_attr, is_study_attr
from index.model import InstanceRecord
from index.parse import norm_da, norm_dt, norm_tm, pn_components, pn_norm
from index.schema import PATIENT, TABLES

Json = dict[str, Any]
SEP = "\x1f"  # separates fuzzy name components; never appears in a PN

INSTANCE_COLS = tuple(n for n, _ in TABLES["instances"])
SERIES_COLS = tuple(n for n, _ in TABLES["series"])
STUDY_COLS = tuple(n for n, _ in TABLES["studies"])
PATIENTS_COLS = tuple(n for n, _ in TABLES["patients"])
PATIENT_COLS = tuple(n for n, _ in PATIENT)


def values(js: Json, tag: str) -> list[Any]:
    """The Value list of an element (empty when absent or empty)."""
    el = js.get(tag)
    return list(el.get("Value") or []) if isinstance(el, dict) else []


def first(js: Json, tag: str) -> Any:
    """The first value of an element, None when absent or empty (values() without its copy:
    every indexed column reads one, per stored instance)."""
    el = js.get(tag)
    if not isinstance(el, dict):
        return None
    vs = el.get("Value")
    return vs[0] if vs else None


def text(js: Json, tag: str) -> str | None:
    """The first value of an element as a string, None when absent."""
    v = first(js, tag)
    return None if v is None else str(v).strip()


def integer(js: Json, tag: str) -> int | None:
    """The first value of an IS/US element as an int, None when absent or not a number."""
    v = first(js, tag)
    try:
        return None if v is None else int(float(v))
    except (TypeError, ValueError):
        return None


def da(js: Json, tag: str) -> str | None:
    """A DA value normalized to YYYYMMDD."""
    v = text(js, tag)
    return norm_da(v) if v else None


def tm(js: Json, tag: str) -> str | None:
    """A TM value normalized to HHMMSS.ffffff."""
    v = text(js, tag)
    return norm_tm(v) if v else None


def dt(js: Json, tag: str) -> str | None:
    """A DT value normalized to YYYYMMDDHHMMSS.ffffff."""
    v = text(js, tag)
    return norm_dt(v) if v else None


def pn(js: Json, tag: str) -> tuple[list[str], list[str]]:
    """A PN's three groups (normalized) and their fuzzy component strings (first value only)."""
    name = first(js, tag)
    if isinstance(name, str):
        name = {"Alphabetic": name}
    if not isinstance(name, dict):
        name = {}
    norm, fuzzy = _pn_groups(tuple(str(name.get(g) or "") for g in ("Alphabetic", "Ideographic", "Phonetic")))
    return list(norm), list(fuzzy)  # fresh lists: a row's values are its own


@lru_cache(maxsize=1024)
def _pn_groups(groups: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Normalized groups and fuzzy strings of a name; cached, as every instance of a study
    repeats its names and each one writes the study row again (the regex split costs)."""
    return (tuple(pn_norm(g) for g in groups),
            tuple(SEP + SEP.join(pn_components(g)) if g else "" for g in groups))


def item_texts(js: Json, seq: str, tag: str) -> list[str]:
    """The values of tag in every item of a sequence."""
    out: list[str] = []
    for item in values(js, seq):
        if isinstance(item, dict):
            out.extend(str(v).strip() for v in values(item, tag) if v is not None)
    return out


def study_patient_attrs(js: Json) -> tuple[Json, Json]:
    """subset(js, is_study_attr) and subset(js, is_patient_attr) in one pass, each tag's
    answers remembered (two predicate calls per tag per study row cost more)."""
    study: Json = {}
    patient: Json = {}
    for t, el in js.items():
        k = _levels.get(t)
        if k is None:
            k = (is_study_attr(t), is_patient_attr(t))
            if len(_levels) < 65536:  # bounded: private tags are many
                _levels[t] = k
        if k[0]:
            study[t] = el
        if k[1]:
            patient[t] = el
    return study, patient


_levels: dict[str, tuple[bool, bool]] = {}


def issuer_of(js: Json, institution: str, source: str) -> str:
    """Qualifier of PatientID: IssuerOfPatientID, else the sending institution, else source (rule 6)."""
    return text(js, "00100021") or institution or source


def instance_values(rec: InstanceRecord, seq: int) -> tuple[Any, ...]:
    """The instances row of a record."""
    js = rec.json
    return (text(js, "00080018"), text(js, "0020000D"), text(js, "0020000E"),
            text(js, "00080016") or "", integer(js, "00200013"), da(js, "00080023"),
            tm(js, "00080033"), rec.transfer_syntax, rec.pixel_form, rec.frames, rec.size,
            rec.digest, rec.storage_key, rec.origin.face, rec.origin.source,
            rec.origin.institution, _utc(rec.received), orjson.dumps(rec.extra).decode(),
            orjson.dumps(js), rec.origin.hospital, rec.origin.department, seq)


def _utc(when: datetime) -> datetime:
    """A naive UTC timestamp (stored as TIMESTAMP)."""
    if when.tzinfo is None:
        return when
    return when.astimezone(UTC).replace(tzinfo=None)


def series_values(js: Json, classes: list[str], n_instances: int, rep_sop: str,
                  seq: int) -> tuple[Any, ...]:
    """The series row, from its newest instance."""
    return (text(js, "0020000E"), text(js, "0020000D"), text(js, "00080060"),
            integer(js, "00200011"), text(js, "0008103E"), text(js, "00180015"),
            text(js, "00080080"), da(js, "00400244"), tm(js, "00400245"),
            item_texts(js, "00400275", "00400009"), item_texts(js, "00400275", "00401001"),
            da(js, "00080021"), tm(js, "00080031"), classes, n_instances, rep_sop,
            orjson.dumps({t: el for t, el in js.items() if t in SERIES_ATTRS}), seq)


def patient_values(js: Json, issuer: str) -> tuple[Any, ...]:
    """The patient columns shared by the studies and patients tables."""
    name, name_fz = pn(js, "00100010")
    return (text(js, "00100020") or "", issuer, name, name_fz, da(js, "00100030"),
            text(js, "00100040"))


def patient_key(patient_id: str, issuer: str) -> str:
    """The patients table key."""
    return f"{patient_id}{SEP}{issuer}"


def study_values(js: Json, issuer: str, agg: dict[str, Any], rep_sop: str, seq: int,
                 owner: tuple[str, str | None]) -> tuple[Any, ...]:
    """The study row, from its newest instance and aggregates over its series and instances;
    owner: the origin (hospital, department) of its newest instance."""
    ref, ref_fz = pn(js, "00080090")
    pat = patient_values(js, issuer)
    study_attrs, patient_attrs = study_patient_attrs(js)
    return (text(js, "0020000D"), patient_key(pat[0], issuer), *pat, da(js, "00080020"),
            tm(js, "00080030"), text(js, "00080050"), ref, ref_fz, text(js, "00200010"),
            text(js, "00081030"), agg["modalities"], agg["institutions"], agg["sop_classes"],
            agg["n_series"], agg["n_instances"], rep_sop,
            orjson.dumps(study_attrs), orjson.dumps(patient_attrs),
            *owner, seq)

