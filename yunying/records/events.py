"""Subscribers told of every patient and exam record the record store commits.

The patient master index (issue 15 part 5) and routing (part 7) listen here instead of reading
our tables. A callback runs after the transaction committed, in the thread that committed it
(a collector, the HL7 listener, an HTTP handler): keep it short, hand heavy work to a queue.
An exception in a callback is logged (without values) and does not undo the record.

    from yunying.records import events

    def linked(p: events.PatientEvent) -> None: ...
    events.on_patient(linked)          # also on_exam(...), on_merge(...)

The events carry clear values (ID card number, phone) for the subscriber's own use: sealing
and blind indexes are the subscriber's to apply when it keeps them (yunying/pii.py).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger("yunying.records")
E = TypeVar("E")


@dataclass(frozen=True)
class PatientEvent:
    record_id: str  # rec_patients.id
    hospital: str
    patient_id: str
    issuer: str
    name: str = ""
    sex: str = ""
    birth_date: str = ""  # YYYYMMDD
    id_card: str = ""  # verified (yunying.records.idcard) or ""
    phone: str = ""
    source: str = ""  # collector name, "hl7" or "api"
    extra: dict[str, Any] = field(default_factory=dict)  # visit numbers, address


@dataclass(frozen=True)
class ExamEvent:
    record_id: str  # rec_exams.id
    hospital: str
    accession: str
    patient_record_id: str
    exam_type: str = ""  # modality
    exam_item: str = ""  # the hospital's own exam item code or name
    body_part: str = ""
    status: str = ""
    study_uid: str = ""  # set once images are matched
    source: str = ""


@dataclass(frozen=True)
class MergeEvent:
    merge_id: int
    hospital: str
    surviving_record_id: str
    merged_record_id: str
    undone: bool = False


_patients: list[Callable[[PatientEvent], None]] = []
_exams: list[Callable[[ExamEvent], None]] = []
_merges: list[Callable[[MergeEvent], None]] = []


def on_patient(callback: Callable[[PatientEvent], None]) -> Callable[[PatientEvent], None]:
    """Call `callback` for every patient record stored or updated (usable as a decorator)."""
    _patients.append(callback)
    return callback


def on_exam(callback: Callable[[ExamEvent], None]) -> Callable[[ExamEvent], None]:
    """Call `callback` for every exam (order) stored, updated or matched to a study."""
    _exams.append(callback)
    return callback


def on_merge(callback: Callable[[MergeEvent], None]) -> Callable[[MergeEvent], None]:
    """Call `callback` for every patient merge (HL7 A40) and every undone merge."""
    _merges.append(callback)
    return callback


def remove(callback: Callable[[Any], None]) -> None:
    """Unsubscribe a callback from every list it is on (tests, shutdown)."""
    for subs in (_patients, _exams, _merges):
        while callback in subs:
            subs.remove(callback)  # type: ignore[arg-type]


def _emit(subs: list[Callable[[E], None]], event: E) -> None:
    for cb in list(subs):
        try:
            cb(event)
        except Exception as exc:  # noqa: BLE001 - a subscriber's failure must not undo a committed record
            log.error("records subscriber %s failed: %s", getattr(cb, "__name__", cb), type(exc).__name__)


def emit(events: list[PatientEvent | ExamEvent | MergeEvent]) -> None:
    """Tell the subscribers, in order (called after commit)."""
    for ev in events:
        if isinstance(ev, PatientEvent):
            _emit(_patients, ev)
        elif isinstance(ev, ExamEvent):
            _emit(_exams, ev)
        else:
            _emit(_merges, ev)
