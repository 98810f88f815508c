"""Moving studies to another patient: HL7 A40 (merge) and A47 (identifier change), issue 15 part 3.

The bytes a modality sent are never rewritten (design rule 1). What changes is the index: the
patient attributes in every instance's stored JSON of the moved studies (so QIDO-RS, C-FIND and
/metadata answer with the surviving patient), the study and patient rows rebuilt from them, and
an override per study kept in `patient_overrides`: instances of a moved study received later
get the same attributes, and retrieval of whole instances patches the stored header with them
(`Index.patient_override`). Moving back with `keep=False` restores the attributes and drops the
override (an admin's undo).
"""
from __future__ import annotations

from typing import Any

import duckdb
import orjson

from index.schema import TABLES
from index.write import Refreshed, insert, one_of, refresh

COLS = [n for n, _ in TABLES["instances"]]
JSON, SEQ, SERIES = COLS.index("json"), COLS.index("seq"), COLS.index("series")

Attrs = dict[str, dict[str, Any] | None]  # tag -> DICOM JSON element, None = remove it
MOVABLE = frozenset({"00100010", "00100020", "00100021", "00100030", "00100040", "00101000", "00101001"})
DDL = "CREATE TABLE IF NOT EXISTS patient_overrides (study VARCHAR PRIMARY KEY, attrs BLOB)"


def check_attrs(attrs: Attrs) -> None:
    """Only patient identification may be moved (PatientID, name, issuer, birth date, sex, other IDs)."""
    wrong = set(attrs) - MOVABLE
    if wrong or "00100020" not in attrs:
        raise ValueError(f"a move sets PatientID and may set only {sorted(MOVABLE)}; got {sorted(wrong)}")


def patch(js: dict[str, Any], attrs: Attrs) -> dict[str, Any]:
    """js with attrs applied (elements set or removed)."""
    out = {t: e for t, e in js.items() if t not in attrs}
    out.update((t, e) for t, e in attrs.items() if e is not None)
    return dict(sorted(out.items()))


def load(cur: duckdb.DuckDBPyConnection) -> dict[str, Attrs]:
    """Every override (study -> attrs)."""
    return {s: orjson.loads(a) for s, a in cur.execute("SELECT study, attrs FROM patient_overrides").fetchall()}


def move(cur: duckdb.DuckDBPyConnection, studies: list[str], attrs: Attrs, keep: bool
         ) -> tuple[dict[str, Attrs], Refreshed]:
    """Set attrs on every instance of the studies; returns each moved study's prior values of
    those tags (from its newest instance) and the rows refreshed. Unknown studies are skipped."""
    check_attrs(attrs)
    priors: dict[str, Attrs] = {}
    series: set[str] = set()
    for study in studies:
        # DELETE + INSERT, not UPDATE: an UPDATE left a write transaction that made close()'s
        # CHECKPOINT fail (as write._replace notes)
        rows = cur.execute(f"DELETE FROM instances WHERE study = ? RETURNING {', '.join(COLS)}", [study]).fetchall()
        if not rows:
            continue
        rows.sort(key=lambda r: -r[SEQ])
        newest = orjson.loads(rows[0][JSON])
        priors[study] = {t: newest.get(t) for t in attrs}
        fresh = []
        for r in rows:
            series.add(r[SERIES])
            fresh.append((*r[:JSON], orjson.dumps(patch(orjson.loads(r[JSON]), attrs)), *r[JSON + 1:]))
        insert(cur, "instances", fresh)
    if not priors:
        return priors, Refreshed(set(), set(), [], [], {})
    moved = sorted(priors)
    cur.execute(f"DELETE FROM patient_overrides WHERE {one_of('study', len(moved))}", moved)
    if keep:
        blob = orjson.dumps(attrs)
        for study in moved:
            cur.execute("INSERT INTO patient_overrides VALUES (?, ?)", [study, blob])
    return priors, refresh(cur, set(moved), series, {})
