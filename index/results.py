"""Shaping result rows into DICOM JSON answers (PS3.18 10.6.3.3, Tables 10.6.3-3 to -5)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from index.keys import IMAGE_DEFAULTS, PATIENT_DEFAULTS, SERIES_DEFAULTS, STUDY_DEFAULTS, vr_of
from index.query import Query

Json = dict[str, Any]
Sources = tuple[Json, list[Json], str | None]  # own attributes, upper levels', representative SOP
NEVER_EMPTY = frozenset({"00081190"})  # RetrieveURL: the HTTP face's to add


def el(vr: str, vals: Sequence[Any] | None) -> Json:
    """A DICOM JSON element; no Value when empty."""
    return {"vr": vr, "Value": list(vals)} if vals else {"vr": vr}


def study_computed(n_series: int, n_instances: int, modalities: list[str] | None,
                   sop_classes: list[str] | None) -> Json:
    """Attributes computed over a study (PS3.4 C.3.4 Table C.3-1 ... and PS3.18 Table 10.6.3-3)."""
    return {"00080061": el("CS", sorted(modalities or [])),
            "00080062": el("UI", sorted(sop_classes or [])),
            "00201206": el("IS", [n_series]), "00201208": el("IS", [n_instances]),
            "00080056": el("CS", ["ONLINE"])}


def study_own(attrs: Json, n_series: int, n_instances: int, modalities: list[str] | None,
              sop_classes: list[str] | None) -> Json:
    """A study's attributes with the computed ones (which win)."""
    return {**attrs, **study_computed(n_series, n_instances, modalities, sop_classes)}


def series_own(attrs: Json, n_instances: int) -> Json:
    """A series' attributes with the computed ones."""
    return {**attrs, "00201209": el("IS", [n_instances]), "00080056": el("CS", ["ONLINE"])}


class Shaper:
    """Turns the rows of one query into answers; knows which tags are wanted at which level."""

    def __init__(self, query: Query) -> None:
        self.level = query.level
        self.include_all = query.include_all
        self.explicit = {t.split(".")[0] for t in query.includefields} | {
            m.tag.split(".")[0] for m in query.matches}
        scoped_study = any(m.tag == "0020000D" and m.kind == "single" for m in query.matches)
        scoped_series = any(m.tag == "0020000E" and m.kind == "single" for m in query.matches)
        if query.path_scoped is not None:
            scoped_study, scoped_series = "0020000D" in query.path_scoped, "0020000E" in query.path_scoped
        wanted = set(self.explicit)
        if self.level == "PATIENT":
            wanted |= PATIENT_DEFAULTS
        elif self.level == "STUDY":
            wanted |= STUDY_DEFAULTS
        elif self.level == "SERIES":
            wanted |= SERIES_DEFAULTS | (set() if scoped_study else STUDY_DEFAULTS)
        else:
            wanted |= IMAGE_DEFAULTS
            if not scoped_series:  # PS3.18 10.6.3.3: unscoped instance searches add upper levels
                wanted |= SERIES_DEFAULTS | (set() if scoped_study else STUDY_DEFAULTS)
        self.wanted = sorted(wanted)  # answers are built in tag order (PS3.18 F.2.1)
        self.asked = sorted(self.explicit - NEVER_EMPTY)

    def shape(self, sources: Sources) -> tuple[Json, list[str]]:
        """One answer, and the explicitly asked tags still missing (look them up in the instance)."""
        own, upper, _ = sources
        out: Json = dict(own) if self.include_all else {}
        srcs = (own, *upper)
        for tag in self.wanted:
            if tag in out:
                continue
            for src in srcs:
                if tag in src:
                    out[tag] = src[tag]
                    break
        return out, [t for t in self.asked if t not in out]

    def fill(self, out: Json, missing: list[str], rep: Json | None) -> Json:
        """Add missing asked tags from the representative instance, else empty; in tag order."""
        for tag in missing:
            out[tag] = rep[tag] if rep and tag in rep else {"vr": vr_of(tag)}
        return dict(sorted(out.items())) if missing or self.include_all else out

    def sources(self, row: Sequence[Any]) -> Sources:
        """A row of sql.SELECT as this level's own attributes, upper-level ones (first found
        wins) and its representative instance (for tags kept at no level)."""
        if self.level == "PATIENT":
            attrs = orjson.loads(row[0])
            own = {**attrs, "00201200": el("IS", [row[1]]), "00201202": el("IS", [row[2]]),
                   "00201204": el("IS", [row[3]])}
            own.setdefault("00100021", el("LO", [row[4]] if row[4] else None))  # the qualifier used (design rule 6)
            return own, [], None
        if self.level == "STUDY":
            return study_own(orjson.loads(row[0]), *row[1:5]), [], row[5]
        if self.level == "SERIES":
            return (series_own(orjson.loads(row[0]), row[1]),
                    [study_own(orjson.loads(row[3]), *row[4:8])], row[2])
        js = orjson.loads(row[0])
        own = {t: e for t, e in js.items() if "BulkDataURI" not in e and t != "7FE00010"}
        raw = row[0]
        if (b'"BulkDataURI"' if isinstance(raw, bytes) else '"BulkDataURI"') in raw:  # inside sequences too (a VOI LUT's table)
            own = _without_bulk(own)
        own["00080056"] = el("CS", ["ONLINE"])
        return own, [{"00201209": el("IS", [row[1]])}, study_computed(*row[2:6])], None


def _without_bulk(attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes without bulk data elements at any depth: a query answers no bulk data (the
    index keeps an internal placeholder for its URI, which only WADO-RS metadata resolves)."""
    out: dict[str, Any] = {}
    for tag, element in attrs.items():
        if "BulkDataURI" in element:
            continue
        items = element.get("Value") if element.get("vr") == "SQ" else None
        if items:
            element = {**element, "Value": [_without_bulk(item) if isinstance(item, dict) else item for item in items]}
        out[tag] = element
    return out
