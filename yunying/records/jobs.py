"""Job status of the records subsystem for the jobs registry (yunying/jobs.py, issue 15 part 8):
one job per database / web-service source, the MLLP listener and the matcher. Counts only."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

import yunying.records.schema as t

JobStatus = dict[str, Any]


def status(records: Any) -> list[JobStatus]:
    """The jobs of a `yunying.records.service.Records` (cheap: a few small queries)."""
    out: list[JobStatus] = []
    with records.store.store.engine.connect() as conn:
        cursors = {c.source: c for c in conn.execute(select(t.cursors))}
        rejects = dict(conn.execute(select(t.rejects.c.source, func.max(t.rejects.c.reason)).group_by(
            t.rejects.c.source)).all())
        queued = conn.execute(select(func.count()).select_from(t.unmatched).where(
            t.unmatched.c.resolved_at.is_(None))).scalar_one()
    for s in records.sources:
        c = cursors.get(s.name)
        running = s.name in records.collectors and records.collectors[s.name]._lock.locked()
        errors = [e for e in ((c.last_error if c else ""), rejects.get(s.name, "")) if e]
        out.append({
            "kind": "records", "name": s.name,
            "schedule": f"every {s.interval_seconds} s" if s.interval_seconds else "on demand",
            "last_run": c.last_run if c else None,
            "next_run": (c.last_run + s.interval_seconds) if c and c.last_run and s.interval_seconds else None,
            "state": "running" if running else "failed" if c and c.last_error else "idle",
            "counts": {"rows_total": c.rows if c else 0, "rejected_total": c.rejected if c else 0,
                       "errors_total": c.errors if c else 0},
            "errors": errors[-5:]})
    if records.listener is not None:
        counts = records.handler.counts
        out.append({"kind": "hl7", "name": f"mllp:{records.listener.port}", "schedule": "listening",
                    "last_run": None, "next_run": None, "state": "running",
                    "counts": {"aa_total": counts["AA"], "ae_total": counts["AE"], "ar_total": counts["AR"],
                               "refused_connections_total": records.listener.refused},
                    "errors": []})
    every = records.settings.records_match_seconds
    out.append({"kind": "matching", "name": "images-to-exams",
                "schedule": f"every {every} s" if every else "on demand", "last_run": records.matched_at,
                "next_run": records.matched_at + every if records.matched_at and every else None,
                "state": "idle", "counts": {"unmatched": queued, **{f"{k}_last": v for k, v in
                                                                     records.match_counts.items()}},
                "errors": []})
    return out


def register(records: Any) -> None:
    """Register with the jobs registry when it exists (branch collect adds it)."""
    try:
        from yunying import jobs  # type: ignore[attr-defined]
    except ImportError:
        return
    jobs.register("records", lambda: status(records))
