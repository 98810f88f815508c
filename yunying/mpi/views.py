"""What the review page and API show: identities with masked numbers, review items, events.

ID numbers and phones are shown masked (last four characters); they are unsealed only here,
one at a time, and never logged.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Row

from index.query import Match, Query
from yunying.mpi.linker import PatientIndex
from yunying.mpi.schema import events, identities, reviews


def _masked(index: PatientIndex, sealed: str | None, context: str) -> str:
    if not sealed:
        return ""
    value = index.keys.unseal(sealed, context)
    return "*" * max(0, len(value) - 4) + value[-4:]


def identity_view(index: PatientIndex, row: Row) -> dict[str, Any]:
    return {"id": row.id, "person": row.person_id, "issuer": row.issuer, "patient_id": row.patient_id,
            "source": row.source, "hospital": row.hospital, "name": row.name, "sex": row.sex,
            "birth_date": row.birth_date, "id_number": _masked(index, row.id_sealed, "mpi.id"),
            "id_invalid": bool(row.id_invalid), "phone": _masked(index, row.phone_sealed, "mpi.phone"),
            "link": row.link, "score": row.score, "updated_at": row.updated_at}


def find_identities(index: PatientIndex, text: str = "", person: str = "", limit: int = 50,
                    offset: int = 0) -> list[dict[str, Any]]:
    """Identities whose patient ID or name starts with `text`, or those of one person."""
    q = select(identities).order_by(identities.c.person_id, identities.c.id).limit(limit).offset(offset)
    if person:
        q = q.where(identities.c.person_id == person)
    if text:
        q = q.where(or_(identities.c.patient_id.startswith(text, autoescape=True),
                        identities.c.name.startswith(text, autoescape=True)))
    with index.engine.connect() as conn:
        return [identity_view(index, r) for r in conn.execute(q)]


def review_items(index: PatientIndex, status: str = "open", limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Review items with the identity and the candidate person's identities side by side."""
    with index.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(reviews).where(reviews.c.status == status)).scalar()
        rows = list(conn.execute(select(reviews).where(reviews.c.status == status)
                                 .order_by(reviews.c.score.desc(), reviews.c.id).limit(limit).offset(offset)))
        items = []
        for r in rows:
            me = conn.execute(select(identities).where(identities.c.id == r.identity_id)).first()
            theirs = conn.execute(select(identities).where(identities.c.person_id == r.person_id)).fetchall()
            items.append({"id": r.id, "score": round(r.score, 2), "levels": r.levels, "status": r.status,
                          "created_at": r.created_at, "decided_by": r.decided_by,
                          "identity": identity_view(index, me) if me is not None else None,
                          "candidate": {"person": r.person_id, "identities": [identity_view(index, t) for t in theirs]}})
    return {"total": total, "items": items}


def event_list(index: PatientIndex, identity: int | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    q = select(events).order_by(events.c.id.desc()).limit(limit).offset(offset)
    if identity is not None:
        q = q.where(events.c.identity_id == identity)
    with index.engine.connect() as conn:
        return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(q)]


def person_studies(archive: Any, index: PatientIndex, person: str, cap: int = 5000) -> list[str]:
    """Study Instance UIDs of every identity of a person (unscoped: the caller's query is scoped)."""
    uids: list[str] = []
    for issuer, pid in index.members(person):
        query = Query(level="STUDY", limit=cap, matches=[Match("00100020", "single", (pid,)),
                                                         Match("00100021", "single", (issuer,))])
        uids += [str(s["0020000D"]["Value"][0]) for s in archive.search(query) if "0020000D" in s]
    return uids
