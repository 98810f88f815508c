"""Audit records for DIMSE services (issue 12): C-FIND, C-MOVE, C-GET and C-STORE.

Each handler of dimse/server.py is wrapped, so the handlers themselves stay unchanged: the
final status of a query or retrieve goes out once its record is journaled (what
"acknowledged" means: yunying.audit.trail); C-STOREs of one series on one association fold
into one record with a count.
"""
from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pynetdicom.events import Event

import yunying.audit
from dimse.access import AccessPolicy

log = logging.getLogger("yunying.dimse")
PENDING = {0xFF00, 0xFF01}


def _code(status: Any) -> int | None:
    if isinstance(status, int):
        return status
    return int(getattr(status, "Status", 0xC000)) if status is not None else None


def _outcome(code: int) -> str:
    return "success" if code == 0 or code == 0xFE00 or (code & 0xF000) == 0xB000 else \
        "refused" if code in (0x0124, 0xA801, 0xA900, 0xC001) else "failure"


# what a record's who holds depends only on the association and the policy: worked out once
# per association, not per query (it built a Principal and sorted its roles every C-FIND)
_WHO: weakref.WeakKeyDictionary[Any, tuple[AccessPolicy, dict[str, Any]]] = weakref.WeakKeyDictionary()


def _who(event: Event, policy: AccessPolicy) -> dict[str, Any]:
    """The record's who (principal fields, client, face); read-only, shared by the association."""
    assoc = event.assoc
    try:
        cached = _WHO.get(assoc)
    except TypeError:  # an association object that takes no weak reference: not cached
        cached = None
    if cached is not None and cached[0] is policy:  # a reloaded policy (peers edited) counts anew
        return cached[1]
    aet = str(assoc.requestor.ae_title).strip()
    address = assoc.requestor.address
    principal = policy.principal(aet)
    who = {**yunying.audit.principal_fields(principal), "client": f"{aet}@{address}", "face": "dimse"}
    try:
        _WHO[assoc] = (policy, who)
    except TypeError:  # an association object that takes no weak reference: not cached
        pass
    return who


# by tag: Dataset.get(keyword) goes through getattr, which raises and catches AttributeError
# inside pydicom before its __getattr__ runs (~8 µs a key, present or not); an element the
# handler or we already converted is read from the dataset's dict (~1 µs), a raw one through
# Dataset.__getitem__, which converts it (character set included) once for everyone
STUDY_UID, PATIENT_ID, ACCESSION, LEVEL = 0x0020000D, 0x00100020, 0x00080050, 0x00080052


def _value(ident: Any, tag: int, empty: bool = True) -> str:
    """str(ident.get(keyword, "") or "") as before (or without `or ""`: empty=False)."""
    elem = getattr(ident, "_dict", {}).get(tag)
    if not isinstance(elem, DataElement):  # absent, raw (not converted yet), or not a Dataset
        if tag not in ident:
            return ""
        elem = ident[tag]
    value = elem.value
    if isinstance(value, MultiValue | list):  # several values: backslash-separated as sent, not a list's repr
        return "\\".join(str(v) for v in value)
    return str(value or "") if empty else str(value)


def _keys(event: Event) -> dict[str, Any]:
    """Whose data a query or retrieve names, from its identifier (PatientID, study UIDs)."""
    try:
        ident = event.identifier
    except Exception:  # noqa: BLE001 - an undecodable identifier: the handler refuses it
        return {}
    studies = _value(ident, STUDY_UID).split("\\")
    out: dict[str, Any] = {"studies": " ".join(s for s in studies if s and "*" not in s and "?" not in s),
                           "patient_id": _value(ident, PATIENT_ID)[:200],
                           "accession": _value(ident, ACCESSION)[:64],
                           "detail": {"level": _value(ident, LEVEL, empty=False)}}
    if "*" in out["patient_id"] or "?" in out["patient_id"]:
        out["detail"]["patient_pattern"], out["patient_id"] = out["patient_id"], ""
    return out


def _commit(entry: dict[str, Any]) -> None:
    trail = yunying.audit.current()
    if trail is None:
        return
    try:
        fut = trail.submit(entry)
        if not getattr(fut, "durable", False):  # not in the journal: wait for the commit
            fut.result(timeout=10)
    except Exception as exc:  # noqa: BLE001 - the record stays queued; the service goes on
        log.error("audit record of a DIMSE %s not committed in time (%s)", entry["action"], type(exc).__name__)


def audited_query(handler: Callable[..., Iterator[Any]], action: str) -> Callable[..., Iterator[Any]]:
    """Wrap a C-FIND / C-MOVE / C-GET generator: one record, committed before the final status."""
    def wrapped(event: Event, archive: Any, policy: AccessPolicy, *rest: Any) -> Iterator[Any]:
        entry = {"action": action, **_who(event, policy), **_keys(event)}
        if action == "retrieve" and getattr(event, "move_destination", None):
            entry["detail"]["destination"] = str(event.move_destination).strip()
        counted = False
        for item in handler(event, archive, policy, *rest):
            if isinstance(item, int) and not counted and action == "retrieve":
                entry["count"], counted = item, True  # the number of sub-operations
            elif isinstance(item, tuple) and len(item) == 2:
                code = _code(item[0])
                if code is not None and code not in PENDING:
                    _commit({**entry, "status": f"0x{code:04X}", "outcome": _outcome(code)})
                    entry = {}
            yield item
        if entry and action == "retrieve":
            if not counted:  # refused before any count: an unknown destination (PS3.4 C.4.2.1.5)
                _commit({**entry, "status": "0xA801", "outcome": "refused"})
            else:  # pynetdicom itself sends the final status of sub-operations that all went out
                _commit({**entry, "status": "0x0000", "outcome": "success"})
    return wrapped


class _Noting:
    """The archive as C-STORE sees it, noting which study and series each store went to."""

    def __init__(self, archive: Any) -> None:
        self._archive, self.result = archive, None

    def store(self, *args: Any, **kwargs: Any) -> Any:
        self.result = self._archive.store(*args, **kwargs)
        return self.result

    def admit(self, *args: Any, **kwargs: Any) -> Any:  # what a lent ingest worker wrote (fastrecv)
        self.result = self._archive.admit(*args, **kwargs)
        return self.result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._archive, name)


def audited_store(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the C-STORE handler: a series' instances on one association fold into one record."""
    def wrapped(event: Event, archive: Any, policy: AccessPolicy) -> Any:
        noting = _Noting(archive)
        answer = handler(event, noting, policy)
        trail = yunying.audit.current()
        if trail is None:
            return answer
        code = _code(answer) or 0
        outcome = _outcome(code)
        result = noting.result
        if result is not None and outcome == "success":
            # the next instances of a series only count into its open record: nothing to build
            # for them (the record of the first one names who, when and whose; issue 9)
            requestor = event.assoc.requestor
            client = f"{str(requestor.ae_title).strip()}@{requestor.address}"
            key = ("dimse", client, str(id(event.assoc)), result.study, result.series)
            if trail.counted(key):
                return answer
            entry = {"action": "store", **_who(event, policy), "status": f"0x{code:04X}", "outcome": outcome,
                     "studies": result.study, "series": result.series}
            pid, issuer, accession = getattr(result, "patient", ("", "", ""))
            if pid:  # else the trail looks the study's patient up in the index
                entry.update(patient_id=pid[:200], issuer=issuer[:200], accession=accession[:64])
            fut = trail.fold(key, entry)
        else:
            entry = {"action": "store", **_who(event, policy), "status": f"0x{code:04X}", "outcome": outcome,
                     "detail": {"sop": str(getattr(event.request, "AffectedSOPInstanceUID", ""))}}
            fut = trail.submit(entry)
        if fut is not None and not getattr(fut, "durable", False):
            try:
                fut.result(timeout=10)
            except Exception as exc:  # noqa: BLE001
                log.error("audit record of a C-STORE not committed in time (%s)", type(exc).__name__)
        return answer
    return wrapped
