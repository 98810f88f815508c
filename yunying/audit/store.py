"""Reading, verifying and purging the trail (the writer is yunying.audit.trail)."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select
from sqlalchemy.engine import Engine

from yunying.audit import chain
from yunying.audit.schema import anchors, head, records
from yunying.audit.trail import Trail

DAY_MS = 86_400_000


def verify(engine: Engine, key: bytes) -> tuple[int, list[str]]:
    """Check the whole chain from its anchor (or genesis) to its head: (records checked, problems)."""
    problems: list[str] = []
    with engine.connect() as conn:
        anchor = conn.execute(select(anchors).order_by(anchors.c.through_seq.desc()).limit(1)).first()
        start_seq, start_hash = 0, chain.GENESIS
        if anchor is not None:
            a = anchor._mapping
            if a["mac"] != chain.anchor_mac(key, a["through_seq"], a["through_hash"], a["purged"], a["at_ms"]):
                problems.append("the purge anchor was altered")
            start_seq, start_hash = a["through_seq"], a["through_hash"]
        h = conn.execute(select(head.c.seq, head.c.hash, head.c.mac).where(head.c.id == 1)).first()
        rows = (r._mapping for r in conn.execute(
            select(records).where(records.c.seq > start_seq).order_by(records.c.seq)).yield_per(2000))
        early = conn.execute(select(func.count()).select_from(records)
                             .where(records.c.seq <= start_seq)).scalar_one()
        if early:
            problems.append(f"{early} record(s) at or before the purge anchor are still present or were inserted")
        n, found = chain.verify_rows(key, rows, start_seq, start_hash,  # type: ignore[arg-type]
                                     tuple(h) if h else None)
    return n, problems + found


def _where(since_ms: int | None = None, until_ms: int | None = None, principal: str | None = None,
           patient: str | None = None, study: str | None = None, action: str | None = None,
           outcome: str | None = None, hospitals: frozenset[str] | None = None) -> Any:
    c = records.c
    where: list[Any] = []
    if hospitals is not None:  # an audit admin reads their own hospital's records
        where.append(c.hospital.in_(sorted(hospitals)))
    if since_ms is not None:
        where.append(c.at_ms >= since_ms)
    if until_ms is not None:
        where.append(c.at_ms < until_ms)
    if principal:
        where.append(c.principal_id == principal)
    if patient:
        where.append(c.patient_id == patient)
    if study:
        where.append(c.studies.contains(study, autoescape=True))
    if action:
        where.append(c.action == action)
    if outcome:
        where.append(c.outcome == outcome)
    return and_(True, *where)


def search(engine: Engine, limit: int = 1000, offset: int = 0, **filters: Any) -> list[dict[str, Any]]:
    """Records matching every given filter (see _where), newest first."""
    q = select(records).where(_where(**filters)).order_by(records.c.seq.desc()).limit(limit).offset(offset)
    with engine.connect() as conn:
        return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(q)]


def iter_all(engine: Engine, **filters: Any) -> Iterator[dict[str, Any]]:
    """Every matching record, oldest first, in pages (exports)."""
    after = -1
    while True:
        q = select(records).where(_where(**filters), records.c.seq > after).order_by(records.c.seq).limit(5000)
        with engine.connect() as conn:
            page = [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(q)]
        if not page:
            return
        yield from page
        after = page[-1]["seq"]


def purge(trail: Trail, retention_days: int, now_ms: int | None = None) -> int:
    """Delete records older than the retention (>= 180 days), anchor the rest, record the purge."""
    if retention_days < 180:
        raise ValueError("audit retention is at least 180 days")
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    cutoff = now_ms - retention_days * DAY_MS
    with trail.engine.begin() as conn:
        last = conn.execute(select(records.c.seq, records.c.hash).where(records.c.at_ms < cutoff)
                            .order_by(records.c.seq.desc()).limit(1)).first()
        if last is None:
            return 0
        n = conn.execute(delete(records).where(records.c.seq <= last[0])).rowcount
        conn.execute(insert(anchors).values(
            through_seq=last[0], through_hash=last[1], purged=n, at_ms=now_ms,
            mac=chain.anchor_mac(trail.key, last[0], last[1], n, now_ms)))
    trail.submit({"action": "audit.purge", "principal_kind": "system", "principal_id": "yunying",
                  "face": "cli", "count": n, "status": "ok",
                  "detail": {"through_seq": last[0], "retention_days": retention_days}}).result(30)
    return n


PATIENT_ACTIONS = ("query", "metadata", "retrieve", "frames", "rendered", "thumbnail", "bulkdata", "reformat",
                   "store", "delete")


def patient_accesses(engine: Engine, patient: str, issuer: str | None = None, limit: int = 1000,
                     hospitals: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """Who opened this patient's data, when and what (successful accesses), newest first."""
    c = records.c
    q = select(c.at_ms, c.principal_kind, c.principal_id, c.hospital, c.face, c.action, c.studies, c.series,
               c.count).where(_where(patient=patient, outcome="success", hospitals=hospitals),
                              c.action.in_(PATIENT_ACTIONS))
    if issuer is not None:
        q = q.where(c.issuer == issuer)
    with engine.connect() as conn:
        return [{str(k): v for k, v in r._mapping.items()}
                for r in conn.execute(q.order_by(c.seq.desc()).limit(limit))]


def study_accesses(engine: Engine, studies: Iterable[str], patient_of: Callable[[str], Any],
                   limit: int = 1000) -> list[dict[str, Any]]:
    """Who opened these studies (a patient's own exams), when and what, newest first: the records
    of their patients (by the indexed PatientID) that name one of the studies, or none (a search
    naming the patient)."""
    wanted = set(studies)
    patients = {found[:2] for s in sorted(wanted) if (found := patient_of(s)) is not None}
    if not patients:
        return []
    c = records.c
    q = (select(c.at_ms, c.principal_kind, c.principal_id, c.roles, c.hospital, c.face, c.action, c.studies, c.count)
         .where(c.outcome == "success", c.action.in_(PATIENT_ACTIONS),
                or_(*(and_(c.patient_id == pid, c.issuer.in_({issuer, ""})) for pid, issuer in sorted(patients))))
         .order_by(c.seq.desc()).limit(limit * 4))
    out = []
    with engine.connect() as conn:
        for r in conn.execute(q):
            named = set(r.studies.split())
            if named and not named & wanted:
                continue  # another exam of the same patient, not one this patient was given
            out.append({**{str(k): v for k, v in r._mapping.items()}, "studies": " ".join(sorted(named & wanted))})
            if len(out) == limit:
                break
    return out
