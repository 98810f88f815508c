"""Feeding the master index from the study index: on ingest, and by a rebuild.

On ingest the archive's observer (yunying.routing.hook) hands each stored instance's header;
a patient already seen with the same facts costs one dict lookup, anything new goes to one
background thread (linking reads and writes the app-state store). What a crash loses from that
queue, `yunying mpi rebuild` (or POST /api/mpi/rebuild) recovers from the stored studies.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from index.model import InstanceRecord, Origin
from index.query import Match, Query
from yunying.errors import ArchiveError
from yunying.mpi.facts import PatientFacts, facts_from_json, fingerprint
from yunying.mpi.linker import MpiError, PatientIndex
from yunying.records.events import PatientEvent

log = logging.getLogger("yunying.mpi")
BATCH = 256  # records linked in one transaction
SEEN_MAX = 200_000  # facts remembered to skip repeats (a series sends the same patient many times)
# Linking yields to ingest: it runs once stores pause QUIET_S, or when the oldest queued fact
# has waited DEFER_MAX_S. Linking a new patient costs ~0.5-3 ms of the server's GIL (SQLAlchemy
# statements), which was a third of the server's CPU while modalities pushed small studies
# (issue 9, py-spy --gil); the master index is not read on the store's acknowledgement path.
QUIET_S = 0.5
DEFER_MAX_S = 20.0


class Feeder:
    """The archive observer: new patient facts to the index, off the storing thread."""

    def __init__(self, index: PatientIndex) -> None:
        self.index = index
        # hash of (issuer, patient ID) -> hash of the facts last queued: ~100 bytes an entry where
        # the facts themselves held ~400-600 (up to ~100 MB at SEEN_MAX, issue 9 part 5); two
        # patients alike in both 64-bit hashes would leave the second to `yunying mpi rebuild`
        self._seen: dict[int, int] = {}
        self._queue: queue.Queue[PatientFacts | None] = queue.Queue()
        self._last = 0.0  # when the archive last reported a store
        self._now = threading.Event()  # set: link without waiting for a pause (drain, close)
        self._thread = threading.Thread(target=self._run, name="yunying-mpi-feed", daemon=True)
        self._thread.start()

    def __call__(self, record: InstanceRecord, result: Any) -> None:
        self._last = time.monotonic()
        hashes = fingerprint(record.json, record.origin)
        if hashes is None or self._seen.get(hashes[0]) == hashes[1]:
            return  # no patient, or one queued before with the same facts: no facts built
        facts = facts_from_json(record.json, record.origin)
        if facts is None:
            return
        if len(self._seen) >= SEEN_MAX:
            self._seen.clear()
        self._seen[hashes[0]] = hashes[1]
        self._queue.put(facts)

    def on_record(self, event: PatientEvent) -> None:
        """yunying.records' on_patient subscriber: a HIS/RIS/HL7 patient record, linked like the rest."""
        self._queue.put(PatientFacts(event.source or "records", event.issuer, event.patient_id, event.hospital,
                                     event.name, event.sex, event.birth_date, event.id_card, event.phone))

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            self._yield_to_ingest()
            while len(batch) < BATCH and not self._queue.empty():  # what piled up meanwhile: one commit
                batch.append(self._queue.get_nowait())
            facts = [f for f in batch if f is not None]
            stop = len(facts) < len(batch)
            try:
                if facts:
                    self.index.observe_many(facts)
            except MpiError as exc:
                log.info("patient records not indexed: %s", exc.reason)
            except Exception as exc:  # noqa: BLE001 - keep feeding; no patient data in the log
                log.error("master index update failed: %s", type(exc).__name__)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _yield_to_ingest(self) -> None:
        """Wait while stores keep arriving (at most DEFER_MAX_S)."""
        since = time.monotonic()
        while not self._now.is_set() and time.monotonic() - since < DEFER_MAX_S:
            quiet = time.monotonic() - self._last
            if quiet >= QUIET_S:
                return
            self._now.wait(QUIET_S - quiet)

    def drain(self) -> None:
        """Wait until everything queued so far is linked (without waiting for a pause)."""
        self._now.set()
        try:
            self._queue.join()
        finally:
            self._now.clear()

    def close(self) -> None:
        self._now.set()
        self._queue.put(None)
        self._thread.join(timeout=10)


def stored_patients(archive: Any, page: int = 500) -> Iterator[PatientFacts]:
    """Facts of every stored patient (PatientID + the issuer the index qualified it with),
    completed from the stored header of one of its studies (phone, ID number, hospital)."""
    offset = 0
    while True:
        patients = list(archive.search(Query(level="PATIENT", limit=page, offset=offset)))
        for patient in patients:
            pid, issuer = _value(patient, "00100020"), _value(patient, "00100021")
            studies = list(archive.search(Query(level="STUDY", limit=1, matches=[
                Match("00100020", "single", (pid,)), Match("00100021", "single", (issuer,))])))
            if not pid or not studies:
                continue
            uid = _value(studies[0], "0020000D")
            try:
                header = archive.read_json(archive.instances(uid)[0])
            except ArchiveError:  # deleted meanwhile
                continue
            owner = archive.owner(uid) or ("", None)
            facts = facts_from_json(header, Origin("index", issuer, issuer, owner[0], owner[1]))
            if facts is not None:
                yield replace(facts, issuer=issuer)
        if len(patients) < page:
            return
        offset += page


def _value(item: dict[str, Any], tag: str) -> str:
    return str((item.get(tag, {}).get("Value") or [""])[0])


def rebuild(archive: Any, index: PatientIndex) -> dict[str, int]:
    """Observe every stored study's patient; returns counts by outcome."""
    counts: dict[str, int] = {}
    pending: list[PatientFacts] = []

    def flush() -> None:
        for outcome in index.observe_many(pending):
            kind = outcome.link if outcome.changed else "unchanged"
            counts[kind] = counts.get(kind, 0) + 1
        pending.clear()

    for facts in stored_patients(archive):
        pending.append(facts)
        if len(pending) >= BATCH:
            flush()
    flush()
    return counts
