"""The archive: the single ingest / retrieve / delete path every face uses (design.md).

Store: parse -> bytes written and fsync'ed under a new version key -> index row committed by the
one writer thread (batched) -> the replaced version's bytes removed. Re-store rule (the same for
every face): an identical resend (same SHA-256 of the received stream) changes nothing; a
different instance with the same SOP Instance UID in the same study and series replaces the
stored one; the same SOP Instance UID under another study or series is refused (409 / 0xC409).
"""
from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom import Dataset
from pydicom.uid import UID

from index.model import DEFAULT_HOSPITAL, InstanceRecord, InstanceRow, Origin
from index.query import Query
from storage import Storage, StorageError
from storage.store import HEADER, PIXELDATA, RECORD
from yunying.byteorder import convert_byte_order
from yunying.checking import open_index
from yunying.errors import (
    NO_SPACE,
    ArchiveError,
    InstanceConflict,
    NotAcceptable,
    OutOfResources,
    StudyElsewhere,
    UnknownResource,
)
from yunying.ingest import load_record
from yunying.known import KnownSops
from yunying.part10 import join_part10, pixel_value
from yunying.routing.hook import notify
from yunying.workers import IngestPool, Leased
from yunying.writing import Written, write_instance

log = logging.getLogger("yunying.archive")
OVERLAP_S = 0.5  # stores overlapped this recently: the next one goes to a worker even if it starts alone
LINGER_S = 1.0  # how long the index writer waits to fill a batch; readers cut it short (see _write_loop)
_FLUSH: Any = object()  # queued by a reader: commit what is queued without lingering


@dataclass(frozen=True)
class StoreResult:
    """What happened to one stored instance."""

    sop_class: str
    sop_instance: str
    study: str
    series: str
    outcome: str  # "stored" | "duplicate" (identical resend, nothing changed) | "replaced"
    warnings: list[str] = field(default_factory=list)  # human-readable, no patient data
    committed: Future | None = field(default=None, repr=False, compare=False)  # resolves once indexed
    patient: tuple[str, str, str] = ("", "", "")  # PatientID, IssuerOfPatientID, AccessionNumber (audit)


class Archive:
    """Owns storage/ and index/; thread-safe; every method is synchronous (run it off the event loop)."""

    def __init__(self, data_dir: Path, batch: int = 256, durability: str = "group",
                 ingest_processes: int = 0, issuer_hospitals: dict[str, str] | None = None,
                 inline_bytes: int = 0, dimse_inline_bytes: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        # IssuerOfPatientID -> hospital, for what the default hospital's origins store (issue 11)
        self.issuer_hospitals = dict(issuer_hospitals or {})
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.storage = Storage(self.data_dir / "store", group_sync=durability == "group")
        self.index = open_index(self.data_dir / "index.duckdb")  # InUse: a server holds the folder
        # parse + write in worker processes (0: in this process); the index stays here
        self._pool = IngestPool(self.storage, ingest_processes) if ingest_processes > 0 else None
        self._inline_bytes = inline_bytes  # instances smaller than this are written here even when stores overlap
        # the same for C-STORE (ct10, issue 9): settings.dimse_inline_bytes
        self._inline_dimse = inline_bytes if dimse_inline_bytes is None else dimse_inline_bytes
        self._writing = 0  # stores between receipt and durable bytes
        self._overlap_until = 0.0  # monotonic time until which stores count as overlapping
        self._locks = [threading.Lock() for _ in range(64)]
        self._rows: OrderedDict[str, InstanceRow] = OrderedDict()
        self._rows_lock = threading.Lock()
        self._pending: dict[str, tuple[InstanceRow, Future]] = {}
        self._claims: dict[str, tuple[str, str | None]] = {}  # study -> owner of a store not yet indexed
        self._patients: OrderedDict[str, tuple[str, str, str]] = OrderedDict()  # study -> patient, recent stores
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()  # (record, future), _FLUSH, or None: stop
        self._hurry = threading.Event()  # the writer stops lingering: a flush, a full batch, close
        self._flushes = 0  # flush (and stop) markers queued and not yet taken by the writer
        self._batch = batch
        self._dirty = False
        self.generation = 0  # bumped by every index change: a validator for caches of query answers
        self._marker = self.data_dir / "RUNNING"
        if self._marker.exists():  # the last run did not close cleanly: index what it acknowledged
            report = self.recover()
            log.warning("recovered after an unclean stop: %d re-indexed, %d incomplete removed",
                        len(report["reindexed"]), len(report["removed"]))
        self._marker.write_text("yunying is running on this data folder\n")
        self._known = KnownSops()
        self._loader = threading.Thread(target=self._load_known, name="yunying-known-sops", daemon=True)
        self._loader.start()
        self._writer = threading.Thread(target=self._write_loop, name="yunying-index-writer", daemon=True)
        self._writer.start()

    def _load_known(self) -> None:
        try:
            self._known.load(sop for sop, _key in self.index.storage_keys())
        except Exception:  # noqa: BLE001 - the index closed under us: stores keep asking the index
            log.warning("could not load the SOP Instance UIDs; every store asks the index")

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Finish every queued index write, then close the index (graceful shutdown)."""
        if self._pool is not None:
            self._pool.close()
        self._put(None)
        self._writer.join()
        # a daemon thread still inside DuckDB when the interpreter exits aborts the process
        # ("FATAL: exception not rethrown"): the loader finishes before the index closes
        self._loader.join()
        self.index.close()
        if not self._dirty:
            self._marker.unlink(missing_ok=True)

    def _write_loop(self) -> None:
        """Group commit: one index transaction per batch of records.

        An index transaction costs ~20 ms of CPU whatever its size (the counters of the touched
        series, studies and patients are re-aggregated), so the writer lingers up to LINGER_S
        for more records; a reader waiting in flush() (or a store with wait) cuts it short.
        Measured on small instances (benchmarks corpus, this machine): 3.3 ms of CPU per
        instance in batches of 8, 1.0 in batches of 32, 0.5 in batches of 128. Acknowledged
        stores do not wait for it (their bytes are durable; readers flush), so LINGER_S was
        raised from 0.25 s to 1 s: 4 C-STORE associations of small instances at ~130/s had
        made batches of ~32 (issue 9).

        The writer is not woken by each record it lingers for: it sleeps on `_hurry` (set by a
        reader's flush, a full batch, close) and then takes what was queued meanwhile. Woken per
        record, it took the GIL from the storing threads once per instance just to append it
        (~5% of the server's GIL under 4 associations of small instances, py-spy --gil; issue 9).
        """
        stop = False
        while not stop:
            first = self._queue.get()  # idle: blocks until the first record of a batch
            if first is None:
                return
            if first is _FLUSH:
                with self._rows_lock:
                    self._flushes -= 1
            elif not self._flushes and self._queue.qsize() < self._batch:
                self._hurry.wait(LINGER_S)
            self._hurry.clear()  # a flush after this point finds its marker below, or runs next
            batch = [first] if first is not _FLUSH else []
            while len(batch) < self._batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                if nxt is _FLUSH:  # everything queued before a flush's marker is in this batch
                    with self._rows_lock:
                        self._flushes -= 1
                else:
                    batch.append(nxt)
            if self._flushes:
                self._hurry.set()  # a flush's marker behind a full batch: the next one does not linger
            if batch:
                self._commit(batch)

    def _put(self, item: Any) -> None:
        """Queue a record (or _FLUSH, or None: stop) for the writer; wake it only when it must
        not linger."""
        if item is _FLUSH or item is None:  # close() is a flush too
            with self._rows_lock:
                self._flushes += 1
        self._queue.put(item)
        if item is _FLUSH or item is None or self._queue.qsize() >= self._batch:
            self._hurry.set()

    def _commit(self, batch: list[tuple[InstanceRecord, Future]]) -> None:
        """One index transaction for a batch (group commit); then drop replaced versions' bytes."""
        try:
            olds = self.index.upsert([rec for rec, _ in batch])
        except Exception as exc:  # bytes stay: the next start re-indexes them (RUNNING marker kept)
            log.exception("index commit of %d instance(s) failed", len(batch))
            self._dirty = True
            for rec, fut in batch:
                self._settle(rec, fut, exc=exc)
            return
        self.generation += 1
        for (rec, fut), old in zip(batch, olds):
            if old is not None and old.storage_key != rec.storage_key:
                self.storage.delete(old.storage_key)
            self._settle(rec, fut, old=old)

    def _settle(self, rec: InstanceRecord, fut: Future, old: InstanceRow | None = None,
                exc: Exception | None = None) -> None:
        sop = rec.json["00080018"]["Value"][0]
        with self._rows_lock:
            self._pending.pop(sop, None)
            self._rows.pop(sop, None)
            self._claims.pop(rec.json["0020000D"]["Value"][0], None)  # the index knows it now
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(old)

    def flush(self) -> None:
        """Wait until everything acknowledged so far is indexed (one group commit at most)."""
        with self._rows_lock:
            if not self._pending:
                return
            futures = [fut for _, fut in self._pending.values()]
        self._put(_FLUSH)  # the writer commits now instead of lingering
        for fut in futures:
            fut.exception()

    # -- store -----------------------------------------------------------------------------
    def store(self, source: Path | bytes | BinaryIO, origin: Origin,
              expected_study: str | None = None, wait: bool = True) -> StoreResult:
        """Store one Part 10 file / dataset stream (preamble optional); raises errors.ArchiveError.

        The version folder is written and made durable first (in a worker process when there
        are ingest processes), then the re-store rule decides under the SOP's lock. Returns
        once the bytes are durable and, with wait, indexed (visible to queries). Without wait
        the index row follows within one group commit; a crash before it is recovered at the
        next start from the stored record (design rule 2).
        """
        if not isinstance(source, (Path, bytes)):
            source = source.read()  # type: ignore[union-attr]
        now = time.monotonic()
        with self._rows_lock:
            self._writing += 1
            if self._writing > 1:
                self._overlap_until = now + OVERLAP_S
            alone = now >= self._overlap_until
        try:
            # a lone store (one C-STORE association, a sequential client) is written here: the
            # hop to a worker only pays when stores overlap and contend for this process's GIL.
            # "Alone" is judged over the last OVERLAP_S, not at this instant: with 4 associations
            # a store often starts while the others wait for their peers, and a third to a half of
            # them were parsed and written here, holding the GIL the other associations' receive
            # and decisions needed (profile of the small-instance load, issue 9)
            # a small instance is written here even then: its parse and write (~0.4 ms) cost less
            # than the hand-off file, the pipe round trip and the wake-ups of a worker (issue 9)
            if self._pool is not None and not alone and not self._small(source, origin):
                w = self._pool.write(source, origin, expected_study)
            else:
                w = write_instance(self.storage, source, origin, expected_study)
        except OSError as exc:
            raise _no_space(exc) from None
        finally:
            with self._rows_lock:
                self._writing -= 1
        src = source
        return self.admit(w, origin, lambda: write_instance(self.storage, src, origin, expected_study), wait)

    def _small(self, source: Path | bytes, origin: Origin) -> bool:
        """Below ingest_inline_bytes (dimse_inline_bytes for C-STORE): cheaper to write in this
        process than to hand to a worker."""
        limit = self._inline_dimse if origin.face == "dimse" else self._inline_bytes
        if limit <= 0:
            return False
        if isinstance(source, bytes):
            return len(source) < limit
        try:
            return source.stat().st_size < limit
        except OSError:
            return False  # the worker reports it

    def admit(self, w: Written | BaseException, origin: Origin, rewrite: Callable[[], Written | BaseException],
              wait: bool = False, durable: bool = True) -> StoreResult:
        """The second half of a store: a version already written (by store(), or by an ingest
        worker serving a storage association itself) is decided under its SOP's lock and queued
        for the index. `w` may be the exception its writing raised (raised here, as store()
        would); `rewrite` writes the same bytes again (a rare race below); durable=False: the
        writer left the durability step to us (a group sync shared with every other store)."""
        if isinstance(w, BaseException):
            raise _no_space(w) if isinstance(w, OSError) else w
        if not durable and self.storage.group_sync:
            try:
                self.storage.sync(w.key, 0)
            except OSError as exc:
                if not w.existed:
                    self.storage.delete(w.key)
                raise _no_space(exc) from None
        with self._locks[hash(w.sop) % len(self._locks)]:
            with self._rows_lock:
                earlier = self._pending.get(w.sop)
            if earlier is not None:  # one version of a SOP in flight at a time
                self._put(_FLUSH)
                earlier[1].exception()
            if w.existed and not self.storage.complete(w.key):
                # this content's folder was the version a later store replaced, and that commit
                # has removed it since (replaced versions go before their store settles): write
                # it again, under the SOP's lock
                again = rewrite()
                if isinstance(again, BaseException):
                    raise _no_space(again) if isinstance(again, OSError) else again
                w = again
            origin = self._owning(w.record)
            self._claim(w, origin)
            current = self.row(w.sop) if self._known.maybe(w.sop) else None
            if current is not None:
                if (current.study, current.series) != (w.study, w.series):
                    if not w.existed:
                        self.storage.delete(w.key)
                    raise InstanceConflict(
                        f"SOP Instance {w.sop} is already stored in another study or series")
                if current.digest == w.digest:
                    if current.storage_key != w.key and not w.existed:
                        self.storage.delete(w.key)
                    return StoreResult(w.sop_class, w.sop, w.study, w.series, "duplicate", _warnings(w),
                                       patient=_patient(w))
            self._known.add(w.sop)
            fut: Future = Future()
            with self._rows_lock:
                self._claim(w, origin, claim=True)  # two hospitals' first stores of one study race here
                self._pending[w.sop] = (_row_of(w), fut)
                self._patients[w.study] = _patient(w)
                self._patients.move_to_end(w.study)
                while len(self._patients) > 10_000:
                    self._patients.popitem(last=False)
            self._put((w.record, fut))
        result = StoreResult(w.sop_class, w.sop, w.study, w.series,
                             "replaced" if current is not None else "stored", _warnings(w), committed=fut,
                             patient=_patient(w))
        if wait:
            self._put(_FLUSH)
            fut.result()
        notify(self, w.record, result)  # issue 15: routing and the patient master index (yunying/routing/hook.py)
        return result

    def lease_worker(self) -> AbstractContextManager[Leased | None]:
        """An ingest worker process of the caller's own for a long task (a storage association
        served in it, yunying.workers.Leased), or None without ingest processes or at the cap."""
        return self._pool.lease() if self._pool is not None else nullcontext(None)

    def _owning(self, record: InstanceRecord) -> Origin:
        """The record's origin, its hospital taken from IssuerOfPatientID when the settings map
        that issuer and the origin is the default hospital's (an import, a legacy peer...)."""
        origin = record.origin
        if self.issuer_hospitals and origin.hospital == DEFAULT_HOSPITAL:
            issuer = (record.json.get("00100021", {}).get("Value") or [None])[0]
            mapped = self.issuer_hospitals.get(str(issuer).strip()) if issuer else None
            if mapped:
                origin = record.origin = replace(origin, hospital=mapped, department=None)
        return origin

    def _claim(self, w: Written, origin: Origin, claim: bool = False) -> None:
        """Refuse an instance of a study another hospital owns (its bytes just written go);
        claim: mark the study as this origin's until its index row is committed (the caller
        holds _rows_lock and queues the store next)."""
        owner = self._claims.setdefault(w.study, (origin.hospital, origin.department)) if claim \
            else self.owner(w.study)
        if owner is not None and owner[0] != origin.hospital:
            if not w.existed:
                self.storage.delete(w.key)
            raise StudyElsewhere(f"study {w.study} takes no instances from this origin")

    def study_patient(self, study: str) -> tuple[str, str, str] | None:
        """(PatientID, IssuerOfPatientID, AccessionNumber) of a study stored since the start,
        from memory (the audit trail's look-up: an index search would wait for the group commit
        of everything acknowledged, one forced commit per STOW request); None if not known here."""
        with self._rows_lock:
            return self._patients.get(study)

    def owner(self, study: str) -> tuple[str, str | None] | None:
        """The origin (hospital, department) of a stored study (acknowledged stores included);
        None when it is not stored."""
        claimed = self._claims.get(study)
        return claimed if claimed is not None else self.index.owner(study)

    def cached_owner(self, study: str) -> tuple[tuple[str, str | None] | None] | None:
        """owner(study) as a 1-tuple when known without DuckDB (safe on an event loop), else None."""
        claimed = self._claims.get(study)
        return (claimed,) if claimed is not None else self.index.cached_owner(study)

    # -- find ------------------------------------------------------------------------------
    def search(self, query: Query) -> Iterator[dict]:
        """DICOM JSON dicts of the matches, streamed in the index's stable order.

        Reads wait for the index rows of everything already acknowledged (read-your-writes),
        so a C-STORE acknowledged before a query is always found by it.
        """
        self.flush()
        return self.index.search(query)

    def iter_metadata(self, study: str, series: str | None = None, sop: str | None = None) -> Iterator[list[bytes]]:
        """Stored instance JSON in batches, in instances() order."""
        self.flush()
        return self.index.iter_metadata(study, series, sop)

    def row(self, sop: str) -> InstanceRow | None:
        """The current version of an instance (cached: frame requests stay off the index)."""
        with self._rows_lock:
            pending = self._pending.get(sop)
            if pending is not None:
                return pending[0]
            row = self._rows.get(sop)
            if row is not None:
                self._rows.move_to_end(sop)
                return row
        row = self.index.lookup(sop)
        if row is not None:
            with self._rows_lock:
                self._rows[sop] = row
                while len(self._rows) > 50_000:
                    self._rows.popitem(last=False)
        return row

    def cached_row(self, study: str, series: str, sop: str) -> InstanceRow | None:
        """The instance's row when it is in memory (never touches the index: safe on an event loop)."""
        with self._rows_lock:
            pending = self._pending.get(sop)
            row = pending[0] if pending is not None else self._rows.get(sop)
        return row if row is not None and (row.study, row.series) == (study, series) else None

    def _forget(self, sop: str) -> None:
        with self._rows_lock:
            self._rows.pop(sop, None)

    def instances(self, study: str, series: str | None = None, sop: str | None = None) -> list[InstanceRow]:
        """The instances under a study/series/instance; raises UnknownResource when none."""
        if sop is not None:
            row = self.row(sop)
            rows = [row] if row and row.study == study and (series is None or row.series == series) else []
        else:
            self.flush()
            generation = self.generation
            rows = self.index.instances(study, series)
            with self._rows_lock:  # frame requests for these instances now skip the index
                if generation == self.generation:  # unless a commit or delete raced this read
                    self._rows.update((r.sop, r) for r in rows if r.sop not in self._pending)
                    while len(self._rows) > 50_000:
                        self._rows.popitem(last=False)
        if not rows:
            raise not_stored(study, series, sop)
        return rows

    def instance(self, study: str, series: str, sop: str) -> InstanceRow:
        """One instance, checked against its study and series."""
        return self.instances(study, series, sop)[0]

    # -- retrieve --------------------------------------------------------------------------
    def read_header(self, row: InstanceRow) -> Dataset:
        """The stored header (all but PixelData), with file meta; a study moved to another
        patient (HL7 merge, index/moves.py) gets that patient's attributes."""
        ds = pydicom.dcmread(io.BytesIO(self._blob(row, HEADER)), force=True)
        override = self.index.patient_override(row.study)
        return ds if override is None else patient_patched(ds, override)

    def read_json(self, row: InstanceRow) -> dict:
        """The stored DICOM JSON of a version, from the record beside its bytes (no index, no header parse)."""
        return load_record(self._blob(row, RECORD)).json

    def _blob(self, row: InstanceRow, name: str) -> bytes:
        try:
            return self.storage.read_blob(row.storage_key, name)
        except StorageError:
            raise UnknownResource(f"instance {row.sop} has no stored bytes (run `yunying check`)") from None

    def pixel_value(self, row: InstanceRow, big_endian: bool = False) -> bytes:
        """The PixelData value exactly as received (native frames re-joined, or the kept bitstream)."""
        if row.pixel_form == "native":
            arr = self.storage.read_frames(row.storage_key)
            return pixel_value(arr, row.extra, big_endian)
        return self._blob(row, PIXELDATA)

    def read_frame(self, row: InstanceRow, number: int) -> np.ndarray | bytes:
        """Frame `number` (1-based): an array for native pixels, the kept bitstream when encapsulated."""
        if not 1 <= number <= max(row.frames, 0):
            raise UnknownResource(f"instance {row.sop} has no frame {number}")
        if row.pixel_form == "native":
            return self.storage.read_frame(row.storage_key, number - 1)
        if row.pixel_form == "encapsulated":
            fmap = row.extra.get("frames")
            if not fmap:
                raise UnknownResource(f"instance {row.sop}: its fragments cannot be split into frames")
            with self.storage.open_blob(row.storage_key, PIXELDATA) as fh:
                parts = []
                for off, length in fmap[number - 1]:
                    fh.seek(off)
                    parts.append(fh.read(length))
            return b"".join(parts)
        value = self._blob(row, PIXELDATA)
        size = len(value) // row.frames
        return value[(number - 1) * size: number * size]

    def read_dataset(self, row: InstanceRow, transfer_syntax: str | None = None) -> Dataset:
        """The full dataset (file meta included); transcoded when transfer_syntax differs from stored."""
        ds = self.read_header(row)
        stored = UID(row.transfer_syntax)
        target = UID(transfer_syntax) if transfer_syntax else stored
        vr = row.extra.get("vr", "OW")
        if row.pixel_form == "none" or (row.pixel_form != "encapsulated" and not target.is_encapsulated):
            if row.pixel_form == "native":
                value = self.pixel_value(row, target == pydicom.uid.ExplicitVRBigEndian)
                if int(ds.get("BitsAllocated", 16) or 16) == 8:
                    value = _swap(value, ds, vr, stored, target)  # 8-bit OW kept as received: BE words
                ds.add_new(0x7FE00010, vr, value)
            elif row.pixel_form == "blob":
                ds.add_new(0x7FE00010, vr, _swap(self._blob(row, PIXELDATA), ds, vr, stored, target))
            ds.file_meta.TransferSyntaxUID = target
            return ds
        ds.add_new(0x7FE00010, vr, self.pixel_value(row, stored == pydicom.uid.ExplicitVRBigEndian))
        if row.pixel_form == "encapsulated":
            ds["PixelData"].is_undefined_length = True
        if target != stored:
            from yunying.pixels import transcode_dataset

            try:
                ds = transcode_dataset(ds, str(target))
            except ArchiveError as exc:  # what the stored bitstream cannot become is not acceptable
                raise NotAcceptable(f"instance {row.sop} cannot be sent in {target}: {exc.reason}") from None
        return ds

    def read_part10(self, row: InstanceRow, transfer_syntax: str | None = None) -> bytes:
        """A Part 10 file of the instance in transfer_syntax (None: as received)."""
        target = UID(transfer_syntax or row.transfer_syntax)
        stored = UID(row.transfer_syntax)
        if (target == stored and stored != pydicom.uid.DeflatedExplicitVRLittleEndian
                and self.index.patient_override(row.study) is None):
            head = self._blob(row, HEADER)
            if row.pixel_form == "none":
                return head
            big = stored == pydicom.uid.ExplicitVRBigEndian
            return join_part10(head, row, self.pixel_value(row, big), stored)
        return _write(self.read_dataset(row, str(target)), target)

    # -- delete ----------------------------------------------------------------------------
    def delete(self, study: str, series: str | None = None, sop: str | None = None) -> int:
        """Remove index rows, then bytes; returns the number of instances removed."""
        self.flush()  # an acknowledged store still on its way to the index is deleted too
        removed = self.index.delete(study, series, sop)
        self.generation += 1
        with self._rows_lock:
            self._patients.pop(study, None)
        if not removed:
            raise not_stored(study, series, sop)
        for row in removed:
            self._forget(row.sop)
            self.storage.delete(row.storage_key)
        return len(removed)

    def move_patient(self, studies: list[str], attrs: dict[str, Any], keep: bool = True) -> dict[str, Any]:
        """Move studies to another patient in the index (HL7 A40/A47, index/moves.py); the
        stored bytes stay as received and are corrected on retrieval. Returns prior attributes."""
        self.flush()  # what was acknowledged before the move moves with its study
        priors = self.index.move_patient(studies, attrs, keep)
        self.generation += 1
        return priors

    # -- check and recovery ----------------------------------------------------------------
    def check(self, repair: bool = False) -> dict[str, list[str]]:
        """Compare the index with the stored bytes: indexed instances without bytes, versions not indexed.

        repair: a complete version the index lacks is indexed again from its record (nothing is
        lost, and a deleted index.duckdb is rebuilt this way); an incomplete one is removed; an
        index row without bytes is dropped.
        """
        self.flush()
        indexed = dict(self.index.storage_keys())
        keys = set(indexed.values())
        missing = [sop for sop, key in indexed.items() if not self.storage.exists(key)]
        orphans = [key for key in self.storage.versions() if key not in keys]
        report = {"missing": missing, "orphans": orphans, "reindexed": [], "removed": []}
        if repair:
            for sop in missing:
                row = self.index.lookup(sop)
                if row is not None:
                    self.index.delete(row.study, row.series, row.sop)
                    self._forget(sop)
            report.update(self.recover())
            self.generation += 1
        return report

    def recover(self) -> dict[str, list[str]]:
        """After an unclean stop: index complete versions the index lacks, remove incomplete ones."""
        indexed = dict(self.index.storage_keys())
        keys = set(indexed.values())
        reindexed, removed, records = [], [], []
        for key in self.storage.versions():
            if key in keys:
                continue
            try:
                record = load_record(self.storage.read_blob(key, RECORD))
            except (StorageError, ValueError, KeyError, TypeError):
                self.storage.delete(key)
                removed.append(key)
                continue
            sop = record.json["00080018"]["Value"][0]
            current = indexed.get(sop)
            if current is not None and current.rsplit("/", 1)[0] != key.rsplit("/", 1)[0]:
                self.storage.delete(key)  # written, then refused: the SOP is stored in another series
                removed.append(key)
                continue
            if current is not None and self._received(current) > record.received:
                self.storage.delete(key)  # an older version the newer one already replaced
                removed.append(key)
                continue
            self._owning(record)  # the record on disk keeps the origin as received
            records.append(record)
            reindexed.append(key)
        for i in range(0, len(records), 256):
            for old, rec in zip(self.index.upsert(records[i:i + 256]), records[i:i + 256]):
                if old is not None and old.storage_key != rec.storage_key:
                    self.storage.delete(old.storage_key)
        return {"reindexed": reindexed, "removed": removed}

    def _received(self, key: str) -> datetime:
        try:
            return load_record(self.storage.read_blob(key, RECORD)).received
        except (StorageError, ValueError, KeyError, TypeError):
            return datetime.min.replace(tzinfo=UTC)

    def _in_pieces(self, row: InstanceRow) -> bool:
        """Whether read_part10_parts gives the stored pieces (else one rewritten Part 10 file)."""
        return (row.pixel_form in ("native", "encapsulated") and "cut" in row.extra
                and self.index.patient_override(row.study) is None
                and UID(row.transfer_syntax) not in (pydicom.uid.ExplicitVRBigEndian,
                                                     pydicom.uid.DeflatedExplicitVRLittleEndian))

    def part10_size(self, row: InstanceRow) -> int | None:
        """len of read_part10_parts(row) from the stored sizes, without reading or decoding it;
        None when only reading tells (`row.size`, the bytes received, can differ: an instance
        received without its file meta is kept with one)."""
        if not self._in_pieces(row):
            return None
        extra, key = row.extra, row.storage_key
        try:
            head = self.storage.blob_size(key, HEADER)
            value = (self.storage.frames_nbytes(key) if row.pixel_form == "native"
                     else self.storage.blob_size(key, PIXELDATA))
        except (StorageError, OSError, ValueError, KeyError):
            return None
        return head + value + sum(len(extra.get(k) or "") // 2 for k in ("elem_head", "pad", "elem_tail"))

    def read_part10_parts(self, row: InstanceRow) -> list[bytes | memoryview]:
        """read_part10(row) as received, in pieces to write one after another (never joined): a
        native PixelData value is the decoded frames' own buffer, an encapsulated one the kept
        bitstream as read (C-MOVE/C-GET and WADO-RS send these)."""
        extra = row.extra
        if not self._in_pieces(row):
            return [self.read_part10(row)]
        head = self._blob(row, HEADER)
        key, cut = row.storage_key, extra["cut"]
        if row.pixel_form == "native":
            value: list[bytes | memoryview] = [
                memoryview(np.ascontiguousarray(self.storage.read_frame(key, i)).data).cast("B")
                for i in range(self.storage.frame_count(key))]
        else:
            value = [self._blob(row, PIXELDATA)]
        return [memoryview(head)[:cut], bytes.fromhex(extra["elem_head"]), *value,
                bytes.fromhex(extra.get("pad") or ""), bytes.fromhex(extra.get("elem_tail", "")),
                memoryview(head)[cut:]]


def _no_space(exc: OSError) -> BaseException:
    """A full disk is OutOfResources: the sender should retry later, not give up (issue 10 part 5)."""
    return OutOfResources("no space left to store the instance: retry later") if exc.errno in NO_SPACE else exc


def patient_patched(ds: Dataset, attrs: dict[str, Any]) -> Dataset:
    """ds with a moved study's patient attributes (DICOM JSON elements; None removes one)."""
    values = Dataset.from_json({t: e for t, e in attrs.items() if e is not None})
    if any(not str(el.value).isascii() for el in values):
        ds.decode()  # every text value read with the stored character set, then written as UTF-8
        ds.SpecificCharacterSet = "ISO_IR 192"
    for tag, element in attrs.items():
        if element is None:
            ds.pop(int(tag, 16), None)
    for el in values:
        ds[el.tag] = el
    return ds


def _warnings(w: Written) -> list[str]:
    """What the ingest noticed and kept anyway (issue 10 part 2), without values."""
    return list(w.record.extra.get("warnings", ()))


def _patient(w: Written) -> tuple[str, str, str]:
    """Whose instance it is, for the audit record: without it the trail asked the index, and
    each such query waited for the group commit of everything acknowledged (Archive.search)."""
    js = w.record.json

    def first(tag: str) -> str:
        values = js.get(tag, {}).get("Value") or [""]
        return str(values[0])
    return first("00100020"), first("00100021"), first("00080050")


def _row_of(w: Written) -> InstanceRow:
    record = w.record
    return InstanceRow(study=w.study, series=w.series, sop=w.sop, sop_class=w.sop_class,
                       transfer_syntax=record.transfer_syntax, pixel_form=record.pixel_form,
                       frames=record.frames, size=record.size, digest=record.digest,
                       storage_key=record.storage_key, extra=record.extra)


def _swap(value: bytes, ds: Dataset, vr: str, stored: UID, target: UID) -> bytes:
    """PixelData words between byte orders: 16-bit samples, and 8-bit ones sent as OW (PS3.5 8.1.1)."""
    big = pydicom.uid.ExplicitVRBigEndian
    bits = int(ds.get("BitsAllocated", 8) or 8)
    if (stored == big) == (target == big) or not (bits == 16 or (bits == 8 and vr == "OW")):
        return value
    return np.frombuffer(value[: len(value) // 2 * 2], "<u2").byteswap().tobytes() + value[len(value) // 2 * 2:]


def _write(ds: Dataset, ts: UID) -> bytes:
    """Re-encode a data set in another transfer syntax (PS3.5 Annex A)."""
    ds.file_meta.TransferSyntaxUID = ts
    buf = io.BytesIO()
    try:
        for _ in ds.iterall():  # converts raw elements, so their VRs come from the dictionary
            pass
        convert_byte_order(ds, ts)
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        raise NotAcceptable(f"instance {ds.get('SOPInstanceUID', '?')} cannot be re-encoded in {ts}: "
                            f"{type(exc).__name__}; ask for transfer-syntax=*") from None
    return buf.getvalue()


def _what(study: str, series: str | None, sop: str | None) -> str:
    if sop:
        return f"instance {sop}"
    return f"series {series}" if series else f"study {study}"


def not_stored(study: str, series: str | None = None, sop: str | None = None) -> UnknownResource:
    """The error of an unknown study, series or instance: also the answer for one outside the
    asker's scope, word for word, so that existence never leaks (issue 11)."""
    return UnknownResource(_what(study, series, sop) + " is not stored")
