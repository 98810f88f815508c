"""A Q/R collector: C-FIND a source by date windows (study, then series level) and fetch what
we do not hold yet, through the archive's one ingest path (issue 15 part 1).

What we hold is compared by instance counts: a study whose count at the source equals ours
is skipped without a series query; otherwise each series we hold fewer instances of is
retrieved. A re-run therefore transfers nothing, and the archive's re-store rule (an
identical resend changes nothing) keeps a retried series from being stored twice.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from index.model import Origin
from yunying.collect.config import Source
from yunying.collect.port import Match, QueryRetrieve, SourceError, check_matches
from yunying.collect.state import CollectState
from yunying.errors import UnknownResource

if TYPE_CHECKING:
    from yunying.archive import Archive

log = logging.getLogger("yunying.collect")
STUDY_KEYS = {"StudyInstanceUID": "", "StudyDate": "", "NumberOfStudyRelatedInstances": "", "SOPClassesInStudy": ""}
SERIES_KEYS = {"StudyInstanceUID": "", "SeriesInstanceUID": "", "NumberOfSeriesRelatedInstances": ""}
Held = Callable[[str, Source], None]  # (study, source): a study is held now (lifecycle records it)


class Pace:
    """Keeps the average retrieve rate under `rate` bytes/s (bursts of one second allowed)."""

    def __init__(self, rate: float) -> None:
        self.rate, self._free, self._lock = rate, time.monotonic(), threading.Lock()

    def spend(self, size: int) -> None:
        if self.rate <= 0 or size <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._free = max(now - 1.0, self._free) + size / self.rate
            wait = self._free - now
        if wait > 0:
            time.sleep(wait)


class Run:
    """Progress of one run (what the jobs API shows while it goes)."""

    def __init__(self, kind: str, state: CollectState, source: str) -> None:
        self.kind, self.state = kind, state
        self.counts: Counter[str] = Counter()
        self.window = ""
        self.error: str | None = None
        self.id = state.start_run(source, kind)
        self._saved = 0.0

    def add(self, **counts: int) -> None:
        self.counts.update(counts)
        if time.monotonic() - self._saved > 2.0:  # progress readable by `yunying collect status`
            self._saved = time.monotonic()
            self.state.update_run(self.id, self.counts)

    def finish(self, ok: bool) -> None:
        self.state.update_run(self.id, self.counts, "done" if ok else "failed", self.error)


class Collector:
    """Collects from one source; thread-safe; at most `concurrency` associations to it at once."""

    def __init__(self, source: Source, qr: QueryRetrieve, archive: Archive, state: CollectState,
                 held: Held | None = None) -> None:
        self.source, self.qr, self.archive, self.state, self.held = source, qr, archive, state, held
        self.gate = threading.BoundedSemaphore(source.concurrency)
        self.pace = Pace(source.bandwidth_bytes)
        self.window_lock = threading.Lock()  # one sync or backfill at a time
        self.stopping = threading.Event()
        self.totals: Counter[str] = Counter()  # since the process started (metrics)
        self.errors: deque[str] = deque(maxlen=20)
        self.current: Run | None = None
        self.last_run: float | None = None
        self.last_state = "idle"

    # -- runs ------------------------------------------------------------------------------
    def sync(self, today: date | None = None) -> Run:
        """The scheduled run: today and the `window_days` days before, one day per C-FIND."""
        today = today or date.today()
        days = [today - timedelta(days=n) for n in range(self.source.window_days + 1)]
        return self._windows("sync", days)

    def backfill(self, until: date | None = None, start: date | None = None) -> Run:
        """Walk back day by day from the saved checkpoint (or `start`, default yesterday) to `until`."""
        name = self.source.name
        if until is not None:
            self.state.set_checkpoint(name, "backfill_until", until.isoformat())
            self.state.set_checkpoint(name, "backfill_next", (start or date.today() - timedelta(days=1)).isoformat())
        saved_until = self.state.checkpoint(name, "backfill_until")
        saved_next = self.state.checkpoint(name, "backfill_next")
        if saved_until is None or saved_next is None:
            until = date.today() - timedelta(days=self.source.backfill_days)
            self.state.set_checkpoint(name, "backfill_until", until.isoformat())
            saved_until, saved_next = until.isoformat(), (date.today() - timedelta(days=1)).isoformat()
        first, last = date.fromisoformat(saved_next), date.fromisoformat(saved_until)
        days = [first - timedelta(days=n) for n in range((first - last).days + 1)]

        def after(day: date) -> None:  # written once the day's instances are stored
            self.state.set_checkpoint(name, "backfill_next", (day - timedelta(days=1)).isoformat())

        run = self._windows("backfill", days, after)
        if run.error is None and not self.stopping.is_set():
            self.state.set_checkpoint(name, "backfill_until", None)
            self.state.set_checkpoint(name, "backfill_next", None)
        return run

    def pending_backfill(self) -> bool:
        """Whether a backfill was started and not finished (resumed at start-up)."""
        return self.state.checkpoint(self.source.name, "backfill_next") is not None

    def refresh(self, *, patient_id: str | None = None, accession: str | None = None,
                study: str | None = None, kind: str = "refresh") -> Run:
        """Real-time refresh: every study of one patient, accession or study UID, now."""
        keys = dict(STUDY_KEYS)
        keys.update({k: v for k, v in (("PatientID", patient_id), ("AccessionNumber", accession),
                                       ("StudyInstanceUID", study)) if v})
        run = self._begin(kind)
        try:
            self._collect(run, self._find_studies(run, keys))
        except SourceError as exc:
            self._failed(run, exc)
        return self._end(run)

    # -- inside a run ----------------------------------------------------------------------
    def _windows(self, kind: str, days: Iterable[date], after: Callable[[date], None] | None = None) -> Run:
        if not self.window_lock.acquire(blocking=False):
            raise Busy(f"{self.source.name}: a sync or backfill is already running")
        try:
            run = self._begin(kind)
            try:
                for day in days:
                    if self.stopping.is_set():
                        run.error = "stopped"
                        break
                    run.window = day.isoformat()
                    keys = dict(STUDY_KEYS, StudyDate=day.strftime("%Y%m%d"))
                    failures = self._collect(run, self._find_studies(run, keys))
                    if failures:  # the checkpoint stays: the day is redone on the next run
                        run.error = f"{failures} stud(ies) of {day.isoformat()} not fetched; see errors"
                        break
                    if after is not None:
                        after(day)
                    run.add(windows=1)
            except SourceError as exc:
                self._failed(run, exc)
            return self._end(run)
        finally:
            self.window_lock.release()

    def _begin(self, kind: str) -> Run:
        run = Run(kind, self.state, self.source.name)
        self.current, self.last_run = run, time.time()
        return run

    def _end(self, run: Run) -> Run:
        run.finish(run.error is None)
        self.last_state = "idle" if run.error is None else "failed"
        self.totals.update({"runs_total": 1, "failed_runs_total": int(run.error is not None)})
        if self.current is run:
            self.current = None
        return run

    def _failed(self, run: Run, exc: Exception) -> None:
        run.error = str(exc)
        self.note_error(str(exc))

    def note_error(self, text: str) -> None:
        """Keep an error for the jobs page (the last 20) and log it (UIDs and statuses only)."""
        self.errors.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}")
        self.totals["errors_total"] += 1
        log.warning("collect %s: %s", self.source.name, text)  # UIDs and statuses only

    def query(self, level: str, keys: dict[str, str]) -> list[dict[str, str]]:
        """C-FIND at the source, within its concurrency limit."""
        with self.gate:
            return self.qr.find(self.source, level, keys)

    def _find_studies(self, run: Run, keys: dict[str, str]) -> list[Match]:
        checked = check_matches(self.query("STUDY", keys), "StudyInstanceUID", "NumberOfStudyRelatedInstances")
        self._odd(run, checked.garbage, checked.duplicates)
        run.add(studies_found=len(checked.matches))
        return checked.matches

    def _odd(self, run: Run, garbage: int, duplicates: int) -> None:
        if garbage or duplicates:
            run.add(garbage=garbage, duplicates=duplicates)
            self.totals.update({"garbage_total": garbage, "duplicates_total": duplicates})
            if garbage:
                self.note_error(f"{garbage} unusable C-FIND match(es) ignored (no valid UID or count)")

    def _collect(self, run: Run, studies: list[Match]) -> int:
        """Fetch what is missing of each study, `concurrency` retrieves at a time; returns the failures.

        Studies we hold nothing of go `batch_studies` to one C-MOVE / C-GET (a UID list, PS3.4
        C.4.2.2.1): with small studies the associations, not the bytes, set the pace.
        """
        held = {m.uid: self.local_counts(m.uid) for m in studies}
        whole = [m for m in studies if not held[m.uid]]
        size = self.source.batch_studies
        groups = [whole[i:i + size] for i in range(0, len(whole), size)] + [[m] for m in studies if held[m.uid]]

        def one(group: list[Match]) -> bool:
            if self.stopping.is_set():
                return False
            try:
                for match in self._collect_whole(run, group) if not held[group[0].uid] else group:
                    self._collect_study(run, match)
                return True
            except SourceError as exc:
                self.note_error(f"study {group[0].uid}: {exc}")
                return False
            except Exception as exc:  # noqa: BLE001 - one bad study must not end the run
                self.note_error(f"study {group[0].uid}: {type(exc).__name__}")
                return False

        if len(groups) <= 1 or self.source.concurrency == 1:
            results = [one(g) for g in groups]
        else:
            with ThreadPoolExecutor(self.source.concurrency, thread_name_prefix=f"collect-{self.source.name}") as pool:
                results = list(pool.map(one, groups))
        return results.count(False)

    def _collect_whole(self, run: Run, group: list[Match]) -> list[Match]:
        """Retrieve studies we hold nothing of in one operation; returns those still incomplete
        (a source that takes no UID list, a failed sub-operation): they go one by one next."""
        classes = tuple(sorted({c for m in group for c in m.sop_classes}))
        try:
            self._retrieve(run, [m.uid for m in group], None, classes)
        except SourceError as exc:
            if len(group) == 1:
                raise
            self.note_error(f"{len(group)} studies in one retrieve: {exc}; retried one by one")
        left = []
        for match in group:
            have = sum(self.local_counts(match.uid).values())
            if have and (match.instances is None or have >= match.instances):
                run.add(studies_fetched=1)
                if self.held is not None:
                    self.held(match.uid, self.source)
            else:
                left.append(match)
        return left

    def _collect_study(self, run: Run, match: Match) -> None:
        held = self.local_counts(match.uid)
        if match.instances is not None and sum(held.values()) >= match.instances:
            run.add(studies_up_to_date=1)
            return
        if not held:  # nothing of it here: one study-level retrieve, no series query
            if self._collect_whole(run, [match]):
                raise SourceError(f"retrieve of study {match.uid} incomplete")
            return
        keys = dict(SERIES_KEYS, StudyInstanceUID=match.uid)
        checked = check_matches(self.query("SERIES", keys), "SeriesInstanceUID", "NumberOfSeriesRelatedInstances")
        self._odd(run, checked.garbage, checked.duplicates)
        fetched = 0
        for series in checked.matches:
            have = held.get(series.uid, 0)
            if have and (series.instances is None or have >= series.instances):
                continue
            fetched += self._retrieve(run, match.uid, series.uid, match.sop_classes)  # raises when incomplete
        run.add(studies_fetched=1 if fetched else 0, studies_up_to_date=0 if fetched else 1)
        if fetched and self.held is not None:
            self.held(match.uid, self.source)

    def _retrieve(self, run: Run, studies: str | list[str], series: str | None,
                  sop_classes: tuple[str, ...] = ()) -> int:
        """One series, or whole studies, from the source; returns the instances received."""
        uids = [studies] if isinstance(studies, str) else studies
        study = uids[0] if len(uids) == 1 else None  # what each C-GET instance must belong to
        with self.gate:
            if self.source.retrieve == "get":
                origin = Origin("collect", self.source.aet, hospital=self.source.hospital)
                stored: Counter[str] = Counter()

                def store(raw: bytes) -> int:
                    result = self.archive.store(raw, origin, expected_study=study, wait=False)
                    stored[result.outcome if result.study in uids else "unasked"] += 1
                    stored["bytes"] += len(raw)
                    self.pace.spend(len(raw))
                    return 0x0000

                result = self.qr.retrieve(self.source, uids, series, store, sop_classes)
                size, duplicates = stored["bytes"], stored["duplicate"]
                if stored["unasked"]:  # a source answering a UID list with other studies: kept, said
                    self.note_error(f"{stored['unasked']} instance(s) of studies not asked for")
            else:
                before = sum(self._series_bytes(u, series) for u in uids)
                result = self.qr.retrieve(self.source, uids, series, None)
                size = sum(self._series_bytes(u, series) for u in uids) - before  # our SCP stored them
                duplicates = 0
                self.pace.spend(size)
        run.add(instances_fetched=result.completed, instances_failed=result.failed, bytes_fetched=size,
                instances_duplicate=duplicates, retrieves=1)
        self.totals.update({"instances_total": result.completed, "bytes_total": size,
                            "failed_instances_total": result.failed})
        if result.failed or result.status not in (0x0000, 0xB000):
            raise SourceError(f"{'series ' + series if series else f'{len(uids)} stud(ies)'}: retrieve status 0x{result.status:04X}, "
                              f"{result.failed} failed, {result.completed} completed")
        return result.completed + result.warning

    def local_counts(self, study: str) -> dict[str, int]:
        """Instances we hold per series of a study."""
        try:
            rows = self.archive.instances(study)
        except UnknownResource:
            return {}
        return dict(Counter(r.series for r in rows))

    def _series_bytes(self, study: str, series: str | None) -> int:
        try:
            return sum(r.size for r in self.archive.instances(study, series))
        except UnknownResource:
            return 0

    def status(self) -> dict[str, Any]:
        """Progress of the current run, if any."""
        run = self.current
        return {} if run is None else {"kind": run.kind, "window": run.window, "counts": dict(run.counts)}


class Busy(Exception):
    """A sync or backfill of this source is already running."""
