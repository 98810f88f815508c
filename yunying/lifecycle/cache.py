"""Lifecycle of stored studies: retention records, the delivery-cache purge, transparent re-fetch,
and deletion after retention (issue 15 part 6).

Delivery cache: when the collected studies we hold pass `cache_high_water` percent of
`delivery_cache_bytes`, the oldest (first collected, first purged; protected ones never) are
purged down to `cache_low_water`, each only after a C-FIND at its source still counts at least
the instances we hold. A later request for a purged study re-fetches it from that source.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from yunying import jobs
from yunying.collect.config import Source
from yunying.collect.port import SourceError, check_matches
from yunying.errors import ArchiveError, UnknownResource
from yunying.lifecycle.retention import parse_retention, study_date
from yunying.lifecycle.studies import LifecycleTable, StudyLife

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from yunying.archive import Archive
    from yunying.collect.collector import Collector
    from yunying.collect.service import CollectService
    from yunying.settings import Settings

log = logging.getLogger("yunying.lifecycle")
CHECK_BATCH = 50  # studies whose presence at the source one C-FIND checks


class RetentionNotOver(ArchiveError):
    """Deletion refused: the study's retention period has not ended."""

    http_status, dimse_status = 409, 0xC000


@dataclass
class Refetch:
    """A re-fetch in progress (or finished) of one purged study."""

    study: str
    expected: int  # instances held before the purge
    started: float
    done: threading.Event
    error: str | None = None
    fetched: int = 0

    def progress(self) -> dict[str, Any]:
        return {"study": self.study, "state": "failed" if self.error else "done" if self.done.is_set() else "fetching",
                "instances": self.fetched, "expected": self.expected, "error": self.error,
                "seconds": round(time.time() - self.started, 1)}


class Lifecycle:
    """Owns the lifecycle table and the cache purge thread."""

    def __init__(self, settings: Settings, archive: Archive, engine: Engine) -> None:
        self.archive = archive
        self.table = LifecycleTable(engine)
        self.retention = parse_retention(settings)
        self.capacity = settings.delivery_cache_bytes
        self.high = self.capacity * settings.cache_high_water // 100
        self.low = self.capacity * settings.cache_low_water // 100
        self.wait_s = settings.refetch_wait_s
        self.every_s = float(settings.cache_check_s)
        self.service: CollectService | None = None
        self._purged = self.table.purged()  # in memory: every request asks (a dict lookup)
        self._refetches: dict[str, Refetch] = {}
        self._lock = threading.Lock()
        self._purge_lock = threading.Lock()
        self.totals: Counter[str] = Counter()
        self.errors: list[str] = []
        self.last_purge: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lifecycle-purge", daemon=True)

    def start(self, service: CollectService | None) -> Lifecycle:
        self.service = service
        if self.capacity:
            self._thread.start()
        jobs.register("lifecycle", self.job_status)
        return self

    def stop(self) -> None:
        self._stop.set()
        jobs.unregister("lifecycle")

    # -- retention -------------------------------------------------------------------------
    def held(self, study: str, source: Source | None) -> None:
        """Record a study we hold now (collected, or re-fetched): class, end date, size."""
        rows = self.archive.instances(study)
        record = self.archive.read_json(rows[0])
        cls = self.retention.classify(record)
        until = self.retention.until(cls, study_date(record) or date.today())
        owner = self.archive.owner(study)
        self.table.record(study, hospital=owner[0] if owner else (source.hospital if source else "default"),
                          source=source.name if source else None, instances=len(rows),
                          size=sum(r.size for r in rows), retention_class=cls, retain_until=until.isoformat())
        with self._lock:
            self._purged.pop(study, None)

    def retention_of(self, study: str) -> dict[str, Any]:
        """The retention class and end date of a held or purged study (derived when unrecorded)."""
        life = self.table.get(study)
        if life is not None:
            return {"study": study, "class": life.retention_class, "retain_until": life.retain_until,
                    "protected": life.protected, "source": life.source, "purged": life.purged_at is not None,
                    "received_at": life.received_at}
        rows = self.archive.instances(study)  # UnknownResource: 404
        record = self.archive.read_json(rows[0])
        cls = self.retention.classify(record)
        until = self.retention.until(cls, study_date(record) or date.today())
        return {"study": study, "class": cls, "retain_until": until.isoformat(), "protected": False,
                "source": None, "purged": False, "received_at": None}

    def delete_after_retention(self, study: str, confirm: str, today: date | None = None) -> int:
        """An admin's confirmed deletion: refused before the retention period ends."""
        if confirm != study:
            raise RetentionNotOver("confirm with the study's UID to delete it")
        info = self.retention_of(study)
        if (today or date.today()) < date.fromisoformat(info["retain_until"]):
            raise RetentionNotOver(f"retention ({info['class']}) runs until {info['retain_until']}")
        removed = 0
        if not info["purged"]:
            removed = self.archive.delete(study)
        self.table.forget(study)
        with self._lock:
            self._purged.pop(study, None)
        return removed

    # -- delivery cache --------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.purge()
            except Exception as exc:  # noqa: BLE001 - the loop keeps going; reported on the jobs page
                self._error(f"purge failed: {type(exc).__name__}")

    def purge(self) -> dict[str, int]:
        """Purge oldest-first down to the low-water mark if above the high-water mark."""
        report: Counter[str] = Counter(purged=0, purged_bytes=0, kept_not_at_source=0)
        if not self.capacity or self.service is None:
            return dict(report)
        with self._purge_lock:
            self.last_purge = time.time()
            used = self.table.held_bytes()
            if used <= self.high:
                return dict(report)
            candidates = self.table.oldest_purgeable(limit=10_000)
            for start in range(0, len(candidates), CHECK_BATCH):
                if used <= self.low:
                    break
                chunk = candidates[start:start + CHECK_BATCH]
                at_source = self._source_counts(chunk)  # one C-FIND per source for the chunk
                for life in chunk:
                    if used <= self.low:
                        break
                    if (at_source.get(life.study_uid) or 0) < life.instances:
                        report["kept_not_at_source"] += 1
                        continue
                    try:
                        self.archive.delete(life.study_uid)
                    except UnknownResource:
                        pass
                    self.table.mark_purged(life.study_uid)
                    with self._lock:
                        self._purged[life.study_uid] = life
                    used -= life.bytes
                    report["purged"] += 1
                    report["purged_bytes"] += life.bytes
        self.totals.update({"purged_total": report["purged"], "purged_bytes_total": report["purged_bytes"],
                            "kept_not_at_source_total": report["kept_not_at_source"]})
        return dict(report)

    def _source_counts(self, lives: list[StudyLife]) -> dict[str, int | None]:
        """Instances each study's source counts now (C-FIND, a UID list per source: PS3.4
        C.2.2.2.2); a study the source does not answer for is absent."""
        assert self.service is not None
        out: dict[str, int | None] = {}
        by_source: dict[str, list[str]] = {}
        for life in lives:
            by_source.setdefault(life.source or "", []).append(life.study_uid)
        for name, uids in by_source.items():
            collector = self.service.collectors.get(name)
            if collector is None:
                continue
            found = self._count_at(collector, uids)
            if not found and len(uids) > 1:  # a source that matches no UID list: one by one
                for uid in uids:
                    found.update(self._count_at(collector, [uid]))
            out.update(found)
        return out

    def _count_at(self, collector: Collector, uids: list[str]) -> dict[str, int | None]:
        try:
            answers = collector.query("STUDY", {"StudyInstanceUID": "\\".join(uids), "NumberOfStudyRelatedInstances": ""})
        except SourceError as exc:
            self._error(f"{len(uids)} stud(ies) kept: {exc}")
            return {}
        asked = set(uids)
        return {m.uid: m.instances for m in check_matches(answers, "StudyInstanceUID",
                                                             "NumberOfStudyRelatedInstances").matches if m.uid in asked}

    # -- re-fetch --------------------------------------------------------------------------
    def purged(self, study: str) -> StudyLife | None:
        """The record of a purged study (no I/O: safe on the event loop)."""
        return self._purged.get(study)

    def refetch(self, study: str) -> Refetch:
        """Start (or join) the re-fetch of a purged study from its source."""
        life = self._purged.get(study)
        with self._lock:
            current = self._refetches.get(study)
            if current is not None and not (current.done.is_set() and current.error):
                return current
            job = self._refetches[study] = Refetch(study, life.instances if life else 0, time.time(), threading.Event())
        threading.Thread(target=self._refetch, args=(job, life), name="lifecycle-refetch", daemon=True).start()
        return job

    def _refetch(self, job: Refetch, life: StudyLife | None) -> None:
        try:
            if life is None or life.source is None or self.service is None or life.source not in self.service.collectors:
                raise SourceError("the study's source is not configured")
            collector = self.service.collectors[life.source]
            run = collector.refresh(study=job.study, kind="refetch")
            job.fetched = run.counts["instances_fetched"]
            if run.error or self.purged(job.study) is not None:
                raise SourceError(run.error or "the source no longer holds the study")
            self.totals["refetched_total"] += 1
        except Exception as exc:  # noqa: BLE001 - shown to the waiting request and on the jobs page
            job.error = str(exc) if isinstance(exc, SourceError) else type(exc).__name__
            self._error(f"re-fetch of {job.study} failed: {job.error}")
        finally:
            job.done.set()

    def progress(self, study: str) -> dict[str, Any] | None:
        job = self._refetches.get(study)
        if job is not None and job.done.is_set() is False and self.service is not None:
            life = self._purged.get(study)
            collector = self.service.collectors.get(life.source or "") if life else None
            run = collector.current if collector else None
            if run is not None and run.kind == "refetch":
                job.fetched = run.counts["instances_fetched"]
        return None if job is None else job.progress()

    def _error(self, text: str) -> None:
        self.errors = [*self.errors[-19:], f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}"]
        log.warning("lifecycle: %s", text)

    def job_status(self) -> list[jobs.JobStatus]:
        fetching = sum(1 for j in self._refetches.values() if not j.done.is_set())
        return [{"kind": "lifecycle", "name": "delivery-cache",
                 "schedule": f"every {self.every_s:g} s" if self.capacity else "off",
                 "last_run": self.last_purge, "next_run": (self.last_purge or time.time()) + self.every_s
                 if self.capacity else None,
                 "state": "disabled" if not self.capacity else "running" if self._purge_lock.locked() else "idle",
                 "counts": {**self.totals, "held_bytes": self.table.held_bytes(), "capacity_bytes": self.capacity,
                            "purged_studies": len(self._purged), "refetching": fetching},
                 "errors": list(self.errors)}]
