"""C-FIND by person (issue 15 part 5): a PatientID qualified by IssuerOfPatientID stands for every
identifier the patient master index links to the same person, for peers whose entry says
`"person_matching": true`.

The query stays the standard Patient Root or Study Root C-FIND (PS3.4 C.4.1): at STUDY, SERIES
and IMAGE level, a PatientID and an IssuerOfPatientID that are both single values (no wildcard,
no list) are replaced by the Study Instance UIDs of every identity of that person, as QIDO-RS
`?person=` does (below STUDY, hierarchical queries fix the study: the person's patient then
admits a study filed under another of its IDs). PATIENT level is left as it is. Each response carries its own study's PatientID and IssuerOfPatientID, and, when
the identifier asks for Other Patient IDs Sequence (0010,1002), the person's other identifiers
(PS3.3 C.7.1.1, Patient Identification). A patient the index does not know matches as before.
The calling AE's visibility still filters everything (a person never widens a scope), and the
named patient must itself be one it sees, as for `GET /api/mpi/lookup`: another hospital's
identifier tells it nothing about who that patient is.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from index.query import Match, Query
from yunying.auth.principal import Visibility
from yunying.scope import scoped

PATIENT_ID, ISSUER, STUDY_UID, OTHER_IDS = "00100020", "00100021", "0020000D", "00101002"


class PersonMatching:
    """The master index the find SCP resolves persons with; set by the composition root once
    the app (which owns the index) is built: until then, and without one, nothing changes."""

    def __init__(self, archive: Any) -> None:
        self.archive = archive
        self.index: Any = None  # yunying.mpi.linker.PatientIndex

    def expand(self, query: Query, visibility: Visibility) -> tuple[Query, list[tuple[str, str]]]:
        """The query with the person's studies in place of one PatientID + issuer, and the
        person's (issuer, PatientID) pairs ([] when nothing was expanded)."""
        if self.index is None or query.level == "PATIENT":
            return query, []
        singles = {m.tag: m.values[0] for m in query.matches if m.kind == "single" and m.tag in (PATIENT_ID, ISSUER)}
        if len(singles) != 2:
            return query, []
        person = self.index.person_of(singles[ISSUER], singles[PATIENT_ID])
        if person is None or not self._sees(singles[PATIENT_ID], singles[ISSUER], visibility):
            return query, []
        from yunying.mpi.views import person_studies

        members = self.index.members(person)
        uids = person_studies(self.archive, self.index, person)
        kept = [m for m in query.matches if m.tag not in (PATIENT_ID, ISSUER)]
        return replace(query, matches=[*kept, Match(STUDY_UID, "list", tuple(uids) or ("",))]), members

    def _sees(self, patient_id: str, issuer: str, visibility: Visibility) -> bool:
        probe = Query(level="STUDY", limit=1, matches=[Match(PATIENT_ID, "single", (patient_id,)),
                                                       Match(ISSUER, "single", (issuer,))])
        found = self.archive.search(scoped(probe, visibility))
        try:
            return next(iter(found), None) is not None
        finally:
            close = getattr(found, "close", None)
            if close is not None:
                close()


def with_other_ids(results: Iterator[dict[str, Any]], members: list[tuple[str, str]],
                   asked: bool) -> Iterator[dict[str, Any]]:
    """Each result with Other Patient IDs Sequence listing the person's other identifiers."""
    for result in results:
        if asked and members:
            own = (_first(result, PATIENT_ID), _first(result, ISSUER))
            items = [{PATIENT_ID: {"vr": "LO", "Value": [pid]}, ISSUER: {"vr": "LO", "Value": [issuer]}}
                     for issuer, pid in members if (pid, issuer) != own]
            result = {**result, OTHER_IDS: {"vr": "SQ", "Value": items}}
        yield result


def _first(result: dict[str, Any], tag: str) -> str:
    value = result.get(tag, {}).get("Value") or [""]
    return str(value[0])
