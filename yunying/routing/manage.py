"""Rules created, changed and removed; the queue shown (for the API, the page and the CLI)."""
from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from yunying.auth.errors import Conflict, InvalidRequest, NotFound
from yunying.routing.router import Router
from yunying.routing.rules import parse_destination, parse_match, parse_syntax
from yunying.routing.schema import queue, rules

STATES = ("pending", "done", "failed")


def _values(body: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    unknown = set(body) - {"name", "enabled", "match", "destination", "syntax"}
    if unknown:
        raise InvalidRequest(f"unknown field(s) {', '.join(sorted(unknown))}")
    if "name" in body or not partial:
        name = body.get("name")
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 64 or not name.isprintable():
            raise InvalidRequest("name: 1-64 printable characters")
        out["name"] = name.strip()
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise InvalidRequest("enabled: true or false")
        out["enabled"] = body["enabled"]
    if "match" in body or not partial:
        m = parse_match(body.get("match", {}))
        out["match"] = {"source_aes": list(m.source_aes), "modalities": list(m.modalities),
                        "hospitals": list(m.hospitals), "body_parts": list(m.body_parts), "hours": m.hours}
    if "destination" in body or not partial:
        out["destination"] = parse_destination(body.get("destination"))
    if "syntax" in body or not partial:
        out["syntax"] = parse_syntax(body.get("syntax"))
    return out


def rule_view(row: Any, counts: dict[str, int] | None = None) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "enabled": bool(row.enabled), "match": row.match,
            "destination": row.destination, "syntax": row.syntax, "created_at": row.created_at,
            "updated_at": row.updated_at, "counts": counts or {s: 0 for s in STATES}}


def list_rules(router: Router) -> list[dict[str, Any]]:
    counts = router.counts()
    with router.engine.connect() as conn:
        return [rule_view(r, counts.get(r.id)) for r in conn.execute(select(rules).order_by(rules.c.id))]


def create_rule(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    values = _values(body)
    now = int(time.time())
    try:
        with router.engine.begin() as conn:
            rid = conn.execute(insert(rules).values(**values, enabled=values.get("enabled", True),
                                                    created_at=now, updated_at=now)).inserted_primary_key[0]  # type: ignore[index]
            row = conn.execute(select(rules).where(rules.c.id == rid)).one()
    except IntegrityError:
        raise Conflict(f"a rule named {values['name']!r} exists") from None
    router.reload()
    return rule_view(row)


def update_rule(router: Router, rule_id: int, body: dict[str, Any]) -> dict[str, Any]:
    values = _values(body, partial=True)
    try:
        with router.engine.begin() as conn:
            n = conn.execute(update(rules).where(rules.c.id == rule_id).values(
                **values, updated_at=int(time.time()))).rowcount
            if not n:
                raise NotFound(f"rule {rule_id}: unknown")
            row = conn.execute(select(rules).where(rules.c.id == rule_id)).one()
    except IntegrityError:
        raise Conflict(f"a rule named {values.get('name')!r} exists") from None
    router.reload()
    router.wake()  # a resumed rule's forwards go now
    return rule_view(row)


def delete_rule(router: Router, rule_id: int) -> None:
    """Remove a rule; its pending forwards are dropped (marked failed: visible, retry refused)."""
    with router.engine.begin() as conn:
        if not conn.execute(delete(rules).where(rules.c.id == rule_id)).rowcount:
            raise NotFound(f"rule {rule_id}: unknown")
        conn.execute(update(queue).where(queue.c.rule_id == rule_id, queue.c.state == "pending").values(
            state="failed", last_error="rule deleted", updated_at=int(time.time())))
    router.reload()


def queue_items(router: Router, state: str = "", rule_id: int | None = None, limit: int = 100,
                offset: int = 0) -> list[dict[str, Any]]:
    if state and state not in STATES:
        raise InvalidRequest(f"state: one of {', '.join(STATES)}")
    q = select(queue).order_by(queue.c.id.desc()).limit(limit).offset(offset)
    if state:
        q = q.where(queue.c.state == state)
    if rule_id is not None:
        q = q.where(queue.c.rule_id == rule_id)
    with router.engine.connect() as conn:
        return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(q)]
