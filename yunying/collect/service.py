"""The collection service: one Collector per source, the scheduler, on-demand runs, job status."""
from __future__ import annotations

import logging
import threading
import time
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from croniter import croniter

from yunying import jobs
from yunying.collect.collector import Busy, Collector, Held
from yunying.collect.config import Source, parse_sources
from yunying.collect.port import QueryRetrieve
from yunying.collect.state import CollectState

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from yunying.archive import Archive
    from yunying.settings import Settings

log = logging.getLogger("yunying.collect")
KINDS = ("sync", "backfill", "refresh")


class UnknownSource(KeyError):
    """No source of that name is configured."""


def next_run(schedule: tuple[str, ...], after: float) -> float | None:
    """The next start of any of the cron expressions (local time), after `after`."""
    if not schedule:
        return None
    base = datetime.fromtimestamp(after)
    return min(croniter(expr, base).get_next(float) for expr in schedule)


class CollectService:
    """Runs collectors in background threads, on schedule or on request."""

    def __init__(self, sources: list[Source], qr: QueryRetrieve, archive: Archive, engine: Engine,
                 held: Held | None = None) -> None:
        self.state = CollectState(engine)
        self.collectors = {s.name: Collector(s, qr, archive, self.state, held) for s in sources}
        self._next = {s.name: next_run(s.schedule, time.time()) for s in sources if s.enabled}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._scheduler = threading.Thread(target=self._schedule_loop, name="collect-scheduler", daemon=True)

    def start(self) -> CollectService:
        """Mark runs a killed process left as interrupted, resume backfills, start the scheduler."""
        stale = self.state.interrupted()
        if stale:
            log.info("collect: %d run(s) interrupted by the last stop", stale)
        for name, collector in self.collectors.items():
            if collector.source.enabled and collector.pending_backfill():
                log.info("collect %s: resuming the backfill from its checkpoint", name)
                self.submit(name, "backfill")
        self._scheduler.start()
        jobs.register("collect", self.job_status)
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Stop scheduling; running work stops after the study it is on."""
        self._stop.set()
        for collector in self.collectors.values():
            collector.stopping.set()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        jobs.unregister("collect")

    def collector(self, name: str) -> Collector:
        try:
            return self.collectors[name]
        except KeyError:
            raise UnknownSource(name) from None

    def submit(self, name: str, kind: str, **kwargs: Any) -> threading.Thread:
        """Start a run in the background; Busy when a sync/backfill of the source is running."""
        collector = self.collector(name)
        if kind not in KINDS:
            raise ValueError(kind)
        if kind != "refresh" and collector.window_lock.locked():
            raise Busy(f"{name}: a sync or backfill is already running")
        run = getattr(collector, kind)

        def body() -> None:
            try:
                run(**kwargs)
            except Busy:
                log.info("collect %s: %s skipped, another run is going", name, kind)
            except Exception as exc:
                collector.note_error(f"{kind} failed: {type(exc).__name__}")
                log.exception("collect %s: %s failed", name, kind)

        thread = threading.Thread(target=body, name=f"collect-{name}-{kind}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _schedule_loop(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for name, due in list(self._next.items()):
                if due is not None and due <= now:
                    self._next[name] = next_run(self.collectors[name].source.schedule, now)
                    try:
                        self.submit(name, "sync", today=date.today())
                    except Busy:
                        log.info("collect %s: scheduled sync skipped, a run is still going", name)
            upcoming = [d for d in self._next.values() if d is not None]
            self._stop.wait(min([30.0, *(max(0.5, d - time.time()) for d in upcoming)]))

    def job_status(self) -> list[jobs.JobStatus]:
        """The jobs registry's view (yunying.jobs contract)."""
        out = []
        for name, c in self.collectors.items():
            counts: dict[str, float] = dict(c.totals)
            running = c.current
            if running is not None:
                counts.update({f"run_{k}": v for k, v in running.counts.items()})
            out.append({
                "kind": "collect", "name": name, "schedule": "; ".join(c.source.schedule) or "on demand",
                "last_run": c.last_run, "next_run": self._next.get(name),
                "state": "disabled" if not c.source.enabled else "running" if running is not None else c.last_state,
                "counts": counts, "errors": list(c.errors),
                "source": {"aet": c.source.aet, "host": c.source.host, "port": c.source.port,
                           "retrieve": c.source.retrieve, "concurrency": c.source.concurrency,
                           "bandwidth_mbit": c.source.bandwidth_mbit},
                "progress": c.status(),
                "backfill_next": self.state.checkpoint(name, "backfill_next"),
            })
        return out


def start_service(settings: Settings, qr: QueryRetrieve, archive: Archive, engine: Engine,
                  held: Held | None = None) -> CollectService | None:
    """The service for the configured sources (None when there are none)."""
    sources = parse_sources(settings.collect_sources)
    if not sources:
        return None
    return CollectService(sources, qr, archive, engine, held).start()
