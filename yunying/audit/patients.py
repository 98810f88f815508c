"""Whose data a study is: PatientID, issuer and accession from the index's study row."""
from __future__ import annotations

from typing import Any

from index.query import Match, Query

_PID, _ISSUER, _ACCESSION = "00100020", "00100021", "00080050"


def _value(js: dict[str, Any], tag: str) -> str:
    values = js.get(tag, {}).get("Value") or [""]
    return str(values[0])


def study_patients(archive: Any) -> Any:
    """A look-up study UID -> (PatientID, IssuerOfPatientID, AccessionNumber), None if not stored."""
    recent = getattr(archive, "study_patient", None)

    def lookup(study: str) -> tuple[str, str, str] | None:
        found = recent(study) if recent is not None else None
        if found is not None:  # stored since the start: no index search (it waits for a commit)
            return found  # type: ignore[no-any-return]
        query = Query(level="STUDY", matches=[Match("0020000D", "single", (study,))],
                      includefields={_PID, _ISSUER, _ACCESSION}, limit=1)
        for js in archive.search(query):
            return _value(js, _PID), _value(js, _ISSUER), _value(js, _ACCESSION)
        return None
    return lookup
