"""Routing rules as jobs for the jobs page and /metrics (issue 15 part 8; registered with
`yunying.jobs` under "routing"): counts are gauges of the queue table."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from yunying.routing.router import Router
from yunying.routing.schema import queue


def status(router: Router) -> list[dict[str, Any]]:
    """One job status dict per rule: {kind, name, schedule, last_run, next_run, state, counts, errors}."""
    counts = router.counts()
    with router.engine.connect() as conn:
        due = dict(conn.execute(select(queue.c.rule_id, func.min(queue.c.next_at))
                                .where(queue.c.state == "pending").group_by(queue.c.rule_id)).all())
        errors: dict[int, list[str]] = {}
        for rule_id, error in conn.execute(
                select(queue.c.rule_id, queue.c.last_error).where(queue.c.last_error != "")
                .group_by(queue.c.rule_id, queue.c.last_error).limit(200)):
            errors.setdefault(rule_id, []).append(error)
    out = []
    for rule in router.rules:
        c = counts.get(rule.id, {"pending": 0, "done": 0, "failed": 0, "dropped": 0})
        state = ("disabled" if not rule.enabled or router.paused else "failed" if c["failed"] else
                 "running" if c["pending"] else "idle")  # yunying.jobs.STATES
        out.append({"kind": "routing", "name": rule.name, "schedule": "on receipt",
                    "last_run": router.last_run.get(rule.id), "next_run": due.get(rule.id), "state": state,
                    "counts": c, "errors": errors.get(rule.id, [])[:5]})
    return out
