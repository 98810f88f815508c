"""Rules created, changed and removed; the queue shown, items retried or dropped, sending
paused (for the API, the page and `yunying routing`, which works on the store directly)."""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from yunying.auth.errors import Conflict, InvalidRequest, NotFound
from yunying.routing.rules import parse_destination, parse_match, parse_syntax
from yunying.routing.schema import flags, queue, rules

STATES = ("pending", "done", "failed", "dropped")


class Routing(Protocol):
    """What these functions need: the server's Router, or the CLI's view of the store."""
    engine: Engine

    def reload(self) -> None: ...
    def wake(self) -> None: ...
    def counts(self) -> dict[int, dict[str, int]]: ...


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


def list_rules(router: Routing) -> list[dict[str, Any]]:
    counts = router.counts()
    with router.engine.connect() as conn:
        return [rule_view(r, counts.get(r.id)) for r in conn.execute(select(rules).order_by(rules.c.id))]


def create_rule(router: Routing, body: dict[str, Any]) -> dict[str, Any]:
    values = _values(body)
    now = int(time.time())
    try:
        with router.engine.begin() as conn:
            rid = conn.execute(insert(rules).values(**{"enabled": True, **values},
                                                    created_at=now, updated_at=now)).inserted_primary_key[0]  # type: ignore[index]
            row = conn.execute(select(rules).where(rules.c.id == rid)).one()
    except IntegrityError:
        raise Conflict(f"a rule named {values['name']!r} exists") from None
    router.reload()
    return rule_view(row)


def update_rule(router: Routing, rule_id: int, body: dict[str, Any]) -> dict[str, Any]:
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


def delete_rule(router: Routing, rule_id: int) -> None:
    """Remove a rule; its pending forwards are dropped (marked failed: visible, retry refused)."""
    with router.engine.begin() as conn:
        if not conn.execute(delete(rules).where(rules.c.id == rule_id)).rowcount:
            raise NotFound(f"rule {rule_id}: unknown")
        conn.execute(update(queue).where(queue.c.rule_id == rule_id, queue.c.state == "pending").values(
            state="failed", last_error="rule deleted", updated_at=int(time.time())))
    router.reload()


def queue_items(router: Routing, state: str = "", rule_id: int | None = None, limit: int = 100,
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


def retry_items(router: Routing, ids: Sequence[int]) -> int:
    """Queue items (failed, dropped or waiting for their backoff) to be sent now; done ones are
    refused (409) and unknown ones are 404, before anything changes."""
    with router.engine.begin() as conn:
        found = {r.id: r.state for r in conn.execute(select(queue.c.id, queue.c.state).where(queue.c.id.in_(ids)))}
        _check(ids, found, "done", "already delivered")
        n = conn.execute(update(queue).where(queue.c.id.in_(ids)).values(
            state="pending", attempts=0, next_at=int(time.time()), updated_at=int(time.time()))).rowcount
    router.wake()
    return int(n or 0)


def drop_items(router: Routing, ids: Sequence[int]) -> int:
    """Give up on queue items (kept, state "dropped", never sent unless retried by id)."""
    with router.engine.begin() as conn:
        found = {r.id: r.state for r in conn.execute(select(queue.c.id, queue.c.state).where(queue.c.id.in_(ids)))}
        _check(ids, found, "done", "already delivered")
        n = conn.execute(update(queue).where(queue.c.id.in_(ids)).values(
            state="dropped", last_error="dropped by an operator", updated_at=int(time.time()))).rowcount
    return int(n or 0)


def _check(ids: Sequence[int], found: dict[int, str], refused: str, why: str) -> None:
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"queue item {missing[0]}: unknown")
    done = [i for i in ids if found[i] == refused]
    if done:
        raise Conflict(f"queue item {done[0]}: {why}")


def set_paused(router: Routing, paused: bool) -> dict[str, bool]:
    """Pause or resume all sending (matching instances still queue while paused)."""
    now = int(time.time())
    with router.engine.begin() as conn:
        if not conn.execute(update(flags).where(flags.c.name == "paused").values(value=paused, updated_at=now)).rowcount:
            conn.execute(insert(flags).values(name="paused", value=paused, updated_at=now))
    router.reload()
    router.wake()
    return {"paused": paused}


def is_paused(router: Routing) -> bool:
    with router.engine.connect() as conn:
        return bool(conn.execute(select(flags.c.value).where(flags.c.name == "paused")).scalar())
