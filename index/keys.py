"""Which attributes live at which level, which are matching keys, and the default return keys."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pydicom.datadict import dictionary_VR

# Kinds of matching column: "str", "uid", "pn", "list" (any value of a VARCHAR[]), "int", "da", "tm", "dt"


@dataclass(frozen=True)
class Key:
    """Where a matching key is stored: table alias, column, column kind."""

    alias: str  # p = patients, st = studies, se = series, i = instances
    column: str
    kind: str


# Patient module keys live on both the patients and the studies tables (design rule 6).
PATIENT_KEYS: dict[str, tuple[str, str]] = {
    "00100010": ("patient_name", "pn"),
    "00100020": ("patient_id", "str"),
    "00100021": ("issuer", "str"),
    "00100030": ("birth_date", "da"),
    "00100040": ("sex", "str"),
}
# PS3.18 Table 10.6.1-5 study keys, plus InstitutionName (any series) and SOPClassesInStudy.
STUDY_KEYS: dict[str, tuple[str, str]] = {
    "0020000D": ("uid", "uid"),
    "00080020": ("study_date", "da"),
    "00080030": ("study_time", "tm"),
    "00080050": ("accession", "str"),
    "00080061": ("modalities", "list"),
    "00080090": ("referring", "pn"),
    "00200010": ("study_id", "str"),
    "00081030": ("study_description", "str"),
    "00080080": ("institutions", "list"),
    "00080062": ("sop_classes", "list"),
}
SERIES_KEYS: dict[str, tuple[str, str]] = {
    "0020000E": ("uid", "uid"),
    "00080060": ("modality", "str"),
    "00200011": ("series_number", "int"),
    "0008103E": ("series_description", "str"),
    "00180015": ("body_part", "str"),
    "00080080": ("institution", "str"),
    "00400244": ("pps_date", "da"),
    "00400245": ("pps_time", "tm"),
    "00400275.00400009": ("sps_ids", "list"),
    "00400275.00401001": ("req_proc_ids", "list"),
    "00080021": ("series_date", "da"),
    "00080031": ("series_time", "tm"),
}
INSTANCE_KEYS: dict[str, tuple[str, str]] = {
    "00080016": ("sop_class", "uid"),
    "00080018": ("sop", "uid"),
    "00200013": ("instance_number", "int"),
    "00080023": ("content_date", "da"),
    "00080033": ("content_time", "tm"),
}


def _keys(level: str) -> dict[str, Key]:
    """The matching keys usable at a level; lower levels shadow higher ones (InstitutionName)."""
    if level == "PATIENT":
        return {t: Key("p", c, k) for t, (c, k) in PATIENT_KEYS.items()}
    out = {t: Key("st", c, k) for t, (c, k) in PATIENT_KEYS.items()}
    out.update({t: Key("st", c, k) for t, (c, k) in STUDY_KEYS.items()})
    if level in ("SERIES", "IMAGE"):
        out.update({t: Key("se", c, k) for t, (c, k) in SERIES_KEYS.items()})
        out["0020000D"] = Key("se", "study", "uid")  # filter the scanned table itself
    if level == "IMAGE":
        out.update({t: Key("i", c, k) for t, (c, k) in INSTANCE_KEYS.items()})
        out["0020000D"] = Key("i", "study", "uid")
        out["0020000E"] = Key("i", "series", "uid")
    return out


KEYS: dict[str, dict[str, Key]] = {lv: _keys(lv) for lv in ("PATIENT", "STUDY", "SERIES", "IMAGE")}

# Study-level attributes kept on the study row: Patient, General Study, Patient Study modules
# (PS3.3 C.7.1.1, C.7.2.1, C.7.2.2) plus SpecificCharacterSet and TimezoneOffsetFromUTC.
STUDY_ATTRS = frozenset({
    "00080005", "00080201", "0020000D", "00080020", "00080030", "00080050", "00080051",
    "00080090", "00080096", "0008009C", "0008009D", "00200010", "00081030", "00081032",
    "00081048", "00081049", "00081060", "00081062", "00081080", "00081084", "00081110",
    "00321033", "00321034", "00401012", "00380010", "00380014", "00380060", "00380061",
    "00380062", "00380064", "00380500", "00400031", "00400032", "00400033",
})
# Group 0010 is Patient / Patient Study except these series-level attributes.
NOT_STUDY_0010 = frozenset({"00102210"})
# General Series, General Equipment and Frame of Reference (PS3.3 C.7.3.1, C.7.5.1, C.7.4.1).
SERIES_ATTRS = frozenset({
    "00080005", "00080201", "0020000E", "00080060", "00200011", "00200060", "00080021",
    "00080031", "00081050", "00081052", "00181030", "0008103E", "0008103F", "00081070",
    "00081072", "00081111", "00081250", "00180015", "00185100", "00280108", "00280109",
    "00400275", "00400253", "00400244", "00400245", "00400250", "00400251", "00400254",
    "00400260", "00400280", "00102210", "00080070", "00080080", "00080081", "00081010",
    "00081040", "00081090", "00181000", "00181020", "00200052", "00201040", "0008001A",
})


def is_study_attr(tag: str) -> bool:
    """True for attributes kept on the study row."""
    return tag in STUDY_ATTRS or (tag.startswith("0010") and tag not in NOT_STUDY_0010)


def is_patient_attr(tag: str) -> bool:
    """True for Patient module attributes kept on the patient row."""
    return tag == "00080005" or (tag.startswith("0010") and tag not in NOT_STUDY_0010)


# Default return keys: PS3.18 Tables 10.6.3-3 (study), 10.6.3-4 (series), 10.6.3-5 (instance);
# RetrieveURL is the HTTP face's to add.
STUDY_DEFAULTS = frozenset({
    "00080005", "00080020", "00080030", "00080050", "00080056", "00080061", "00080090",
    "00080201", "00100010", "00100020", "00100030", "00100040", "0020000D", "00200010",
    "00201206", "00201208",
})
SERIES_DEFAULTS = frozenset({
    "00080005", "00080060", "00080201", "0008103E", "0020000E", "00200011", "00201209",
    "00400244", "00400245", "00400275",
})
IMAGE_DEFAULTS = frozenset({
    "00080005", "00080016", "00080018", "00080056", "00080201", "00200013", "00280010",
    "00280011", "00280100", "00280008",
})
PATIENT_DEFAULTS = frozenset({
    "00080005", "00100010", "00100020", "00100021", "00100030", "00100040", "00201200",
    "00201202", "00201204",
})


@lru_cache(maxsize=4096)
def vr_of(tag: str) -> str:
    """The data dictionary VR of a tag (first choice when ambiguous); UN when unknown."""
    try:
        vr = dictionary_VR(int(tag.split(".")[-1], 16))
    except (KeyError, ValueError):
        return "UN"
    return vr.split(" or ")[0] if vr else "UN"
