"""An in-memory stand-in with the Archive's methods, for handler tests until the real one lands."""
from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom import Dataset
from pydicom.uid import UID

from index.model import InstanceRow, Origin
from index.query import Match, Query
from yunying.errors import InvalidInstance, UnknownResource, UnsupportedTransferSyntax

LEVEL_KEYS = {
    "PATIENT": ["00100010", "00100020", "00100021", "00100030", "00100040"],
    "STUDY": ["00080020", "00080030", "00080050", "00080090", "00081030", "0020000D", "00200010",
              "00100010", "00100020", "00100021", "00100030", "00100040"],
    "SERIES": ["00080060", "0008103E", "0020000E", "00200011", "0020000D"],
    "IMAGE": ["00080016", "00080018", "00200013", "0020000E", "0020000D"],
}


class FakeArchive:
    """Part 10 bytes in a dict; matching by a plain reference model of Query."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[bytes, Dataset, Origin]] = {}
        self.lock = threading.Lock()
        self.stores = 0

    def close(self) -> None:
        pass

    def store(self, source: Path | bytes | BinaryIO, origin: Origin, expected_study: str | None = None,
              wait: bool = True) -> Any:
        from yunying.archive import StoreResult

        raw = source if isinstance(source, bytes) else source.read_bytes() if isinstance(source, Path) else source.read()
        try:
            ds = pydicom.dcmread(BytesIO(raw))
            ds.to_json_dict()  # decode every element: malformed input fails here
            keys = (ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID)
        except Exception as exc:  # noqa: BLE001 - the edge: any failure becomes a status
            raise InvalidInstance(f"unreadable data set: {type(exc).__name__}") from None
        with self.lock:
            self.stores += 1
            outcome = "duplicate" if keys[1] in self.items else "stored"
            self.items[str(keys[1])] = (raw, ds, origin)
        return StoreResult(str(keys[0]), str(keys[1]), str(keys[2]), str(keys[3]), outcome)

    # --- query -----------------------------------------------------------------------------
    def _rows(self, level: str) -> list[dict[str, Any]]:
        groups: dict[str, dict[str, Any]] = {}
        key_tag = {"PATIENT": "00100020", "STUDY": "0020000D", "SERIES": "0020000E", "IMAGE": "00080018"}[level]
        with self.lock:
            datasets = [ds for _, ds, _ in self.items.values()]
        for ds in sorted(datasets, key=lambda d: (str(d.StudyInstanceUID), str(d.SeriesInstanceUID),
                                                   str(d.SOPInstanceUID))):
            js = ds.to_json_dict(bulk_data_element_handler=lambda e: "yy-bulk:x")
            key = str(js.get(key_tag, {}).get("Value", [""])[0])
            entry = groups.setdefault(key, {"json": js, "n": 0, "modalities": set(), "series": set()})
            entry["n"] += 1
            entry["series"].add(str(ds.SeriesInstanceUID))
            if "Modality" in ds:
                entry["modalities"].add(ds.Modality)
        out = []
        for entry in groups.values():
            js = {t: v for t, v in entry["json"].items() if t in LEVEL_KEYS[level] or level == "IMAGE"}
            if level == "STUDY":
                js["00201208"] = {"vr": "IS", "Value": [entry["n"]]}
                js["00201206"] = {"vr": "IS", "Value": [len(entry["series"])]}
                js["00080061"] = {"vr": "CS", "Value": sorted(entry["modalities"])}
            if level == "SERIES":
                js["00201209"] = {"vr": "IS", "Value": [entry["n"]]}
            out.append(js)
        return out

    def search(self, query: Query) -> Iterator[dict]:
        for js in self._rows(query.level):
            study = _values(js, "0020000D")
            hospital, department = (self.owner(study[0]) if study else None) or (None, None)
            series = _values(js, "0020000E")
            if query.level != "PATIENT" and not query.scope.admits(
                    study[0] if study else "", hospital, department, series[0] if series else None):
                continue  # the scope, as the index applies it (index.query.StudyScope)
            if all(_matches(js, m) for m in query.matches):
                yield js

    def owner(self, study: str) -> tuple[str, str | None] | None:
        """The origin hospital of a study (its first stored instance's), as Archive.owner."""
        with self.lock:
            for _, ds, origin in self.items.values():
                if ds.StudyInstanceUID == study:
                    return origin.hospital, origin.department
        return None

    def cached_owner(self, study: str) -> tuple[tuple[str, str | None] | None]:
        return (self.owner(study),)

    # --- retrieve ----------------------------------------------------------------------------
    def instances(self, study: str, series: str | None = None, sop: str | None = None) -> list[InstanceRow]:
        with self.lock:
            items = list(self.items.values())
        rows = []
        for raw, ds, _ in items:
            if ds.StudyInstanceUID != study or (series and ds.SeriesInstanceUID != series) or (
                    sop and ds.SOPInstanceUID != sop):
                continue
            rows.append(InstanceRow(study, str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID),
                                    str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID),
                                    "native", 1, len(raw), "", str(ds.SOPInstanceUID), {}))
        if not rows:
            raise UnknownResource("no such instances")
        return sorted(rows, key=lambda r: (r.series, r.sop))

    def read_dataset(self, row: InstanceRow, transfer_syntax: str | None = None) -> Dataset:
        ds = pydicom.dcmread(BytesIO(self.items[row.sop][0]))
        stored = ds.file_meta.TransferSyntaxUID
        if transfer_syntax and transfer_syntax != stored:
            target = UID(transfer_syntax)
            if target.is_compressed:
                raise UnsupportedTransferSyntax(f"cannot encode {target.name}")
            if stored.is_compressed:
                ds.decompress()
            ds.file_meta.TransferSyntaxUID = target
        return ds

    def read_part10(self, row: InstanceRow, transfer_syntax: str | None = None) -> bytes:
        if transfer_syntax is None:
            return self.items[row.sop][0]
        buf = BytesIO()
        self.read_dataset(row, transfer_syntax).save_as(buf, enforce_file_format=True)
        return buf.getvalue()

    def delete(self, study: str, series: str | None = None, sop: str | None = None) -> int:
        rows = self.instances(study, series, sop)
        with self.lock:
            for r in rows:
                self.items.pop(r.sop, None)
        return len(rows)


def _values(js: dict, tag: str) -> list[str]:
    out = []
    for v in js.get(tag, {}).get("Value", []) or []:
        out.append(v.get("Alphabetic", "") if isinstance(v, dict) else str(v))
    return out


def _matches(js: dict, m: Match) -> bool:
    values = _values(js, m.tag)
    if m.kind == "universal":
        return True
    if m.kind in ("single", "list"):
        return any(v in m.values for v in values)
    if m.kind == "wildcard":
        return any(fnmatch.fnmatchcase(v, m.values[0]) for v in values)
    if m.kind == "range":
        lo, hi = m.values
        return any((not lo or v >= lo) and (not hi or v <= hi) for v in values)
    return False
