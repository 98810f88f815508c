"""Writing one received instance: parse, write its version folder, make it durable.

This is the CPU-heavy half of a store (pydicom parsing, the DICOM JSON, hashing, pixel
compression). It needs only storage/, so it runs in the server process or in ingest worker
processes (`yunying.workers.IngestPool`): one Python process tops out near 180 CT instances/s under the GIL
(measured-facts), and the index and the re-store rule stay with the one Archive that decides.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.model import InstanceRecord, Origin
from storage import Storage, StorageError
from storage.packed import packs
from storage.store import HEADER, PIXELDATA, RECORD
from yunying.bigfile import FileRange
from yunying.errors import StudyMismatch
from yunying.ingest import Parsed, dump_record, instance_json, load_record, parse_instance
from yunying.lenient import noting

log = logging.getLogger("yunying.writing")
CLAIM_WAIT_S = 30.0  # how long to wait for another writer of the very same version


@dataclass(frozen=True)
class Written:
    """A durable, complete version folder, not yet indexed."""

    record: InstanceRecord
    sop_class: str
    sop: str
    study: str
    series: str
    existed: bool  # the same version (same content) was already complete: nothing was written

    @property
    def key(self) -> str:
        return self.record.storage_key

    @property
    def digest(self) -> str:
        return self.record.digest

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # from an ingest worker back to the server: the record as its JSON file's bytes (orjson
        # both ways) instead of a pickled tree of dicts, whose unpickling cost the server ~0.4 ms
        # of GIL per small instance (issue 9, py-spy --gil)
        return _written_from, (dump_record(self.record), self.sop_class, self.sop, self.study,
                               self.series, self.existed)


def _written_from(record: bytes, sop_class: str, sop: str, study: str, series: str, existed: bool) -> Written:
    return Written(load_record(record), sop_class, sop, study, series, existed)


def write_instance(storage: Storage, source: Path | bytes, origin: Origin,
                   expected_study: str | None = None, sync: bool = True) -> Written:
    """Parse and store one instance's bytes durably; raises ArchiveError for bad input.

    sync=False leaves the durability step to the caller (the server syncs what its ingest
    workers wrote: with group sync one syncfs then covers the writes of every worker).
    """
    parsed = parse_instance(source)
    if expected_study is not None and parsed.study != expected_study:
        raise StudyMismatch(f"instance belongs to study {parsed.study}, not {expected_study}")
    key = f"{parsed.study}/{parsed.series}/{parsed.sop}.{parsed.digest[:16]}"
    if packs(parsed.size, parsed.frames):  # per-version costs that do not depend on size, cut (issue 9)
        return _write_packed(storage, parsed, key, origin, sync)
    new_parents = storage.prepare(key)
    if new_parents == 0:  # the folder exists: this exact content is stored or being stored
        record = _await_version(storage, key)
        if record is not None and record.digest == parsed.digest:
            if sync:  # its writer may not have synced it yet
                storage.sync(key, 0)
            return _written(parsed, record, existed=True)
        storage.delete(key)  # an abandoned partial write (a worker died): write it again
        new_parents = storage.prepare(key) or 1
    record = _write_version(storage, parsed, key, origin)
    if sync:
        storage.sync(key, new_parents)
    return _written(parsed, record, existed=False)


def _write_packed(storage: Storage, parsed: Parsed, key: str, origin: Origin, sync: bool) -> Written:
    """A small or one-frame instance as one file (storage/packed.py): the same members, one create."""
    for attempt in (0, 1):
        # the first attempt writes without looking: put_packed finds an existing version itself
        # (link(2) refuses its name), and a stat per store cost more than the rare re-store
        if attempt and storage.complete(key):  # this exact content is stored (a packed version is whole)
            record = _await_version(storage, key)
            if record is not None and record.digest == parsed.digest:
                if sync:  # its writer may not have synced it yet
                    storage.sync(key, 0)
                return _written(parsed, record, existed=True)
            storage.delete(key)  # unreadable: write it again
        members: dict[str, bytes] = {}
        if parsed.pixel_form == "native":
            arr = parsed.native
            members.update(storage.frame_members(iter(arr), arr.shape[0], arr.shape[1:],
                                                 arr.dtype.newbyteorder("<")))
        elif parsed.pixel_form in ("encapsulated", "blob"):
            assert parsed.blob is not None
            blob: Any = parsed.blob  # bytes, or a FileRange of a file parsed in place (yunying.bigfile)
            members[PIXELDATA] = b"".join(blob.chunks()) if isinstance(blob, FileRange) else bytes(blob)
        members[HEADER] = parsed.head
        record = _record(parsed, key, origin)
        members[RECORD] = dump_record(record)
        new_parents = storage.put_packed(key, members)
        if new_parents:
            if sync:
                try:
                    storage.sync(key, new_parents)
                except OSError:
                    storage.delete(key)
                    raise
            return _written(parsed, record, existed=False)
    raise OSError(f"version {key} could not be written")  # pragma: no cover - two lost races


def _record(parsed: Parsed, key: str, origin: Origin) -> InstanceRecord:
    """The index record of a version (its DICOM JSON made here: pydicom converts elements lazily)."""
    with noting() as converted:  # elements first read here that could only be kept as UN
        json = instance_json(parsed.header, parsed)
    if converted:
        parsed.extra["warnings"] = [*parsed.extra.get("warnings", ()), *converted]
    return InstanceRecord(
        json=json, transfer_syntax=parsed.transfer_syntax,
        pixel_form=parsed.pixel_form, frames=parsed.frames, size=parsed.size,
        digest=parsed.digest, storage_key=key, origin=origin, extra=parsed.extra)


def _written(parsed: Parsed, record: InstanceRecord, existed: bool) -> Written:
    return Written(record, parsed.sop_class, parsed.sop, parsed.study, parsed.series, existed)


def _await_version(storage: Storage, key: str) -> InstanceRecord | None:
    """The record of a version another writer is completing, or None if none appears in time."""
    deadline = time.monotonic() + CLAIM_WAIT_S
    while True:
        try:
            return load_record(storage.read_blob(key, RECORD))
        except (StorageError, ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.005)


def _write_version(storage: Storage, parsed: Parsed, key: str, origin: Origin) -> InstanceRecord:
    try:
        if parsed.pixel_form == "native":
            assert parsed.native is not None
            arr = parsed.native
            storage.put_frames(key, iter(arr), arr.shape[0], arr.shape[1:], arr.dtype.newbyteorder("<"))
        elif parsed.pixel_form in ("encapsulated", "blob"):
            assert parsed.blob is not None
            blob = parsed.blob
            storage.put_blob(key, PIXELDATA, blob.chunks() if hasattr(blob, "chunks") else bytes(blob),
                             atomic=False)
        storage.put_blob(key, HEADER, parsed.head, atomic=False)
        record = _record(parsed, key, origin)
        storage.put_blob(key, RECORD, dump_record(record))  # last: marks the version complete
    except OSError:
        storage.delete(key)
        raise
    return record
