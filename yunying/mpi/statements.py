"""The linker's hot statements, built once.

Building a SQLAlchemy Core statement per call (`select(...).where(col == value)`, `.values(**kw)`)
and deriving its cache key cost about half of linking a new patient (~0.7 of ~1.5 ms, cProfile of
`benchmarks.mpi_link --batch 256`): coercing each literal, then walking the tree for the
compiled-statement cache. These are built once with bind parameters; each one's cache key is
memoized on the object, so executing one only binds values. Same SQL, same results, on SQLite
and PostgreSQL alike.
"""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Select, and_, bindparam, func, insert, or_, select, update

from yunying.mpi.schema import events, identities, persons, reviews

I = identities.c
identity_by_key = select(identities).where(I.issuer == bindparam("k_issuer"), I.patient_id == bindparam("k_pid"))
# SET columns come from each execution's parameters (the values of the row's facts)
update_identity = update(identities).where(I.id == bindparam("k_id"))
insert_person = insert(persons)
insert_identity = insert(identities)
insert_event = insert(events)
insert_review = insert(reviews)
same_id_number = select(I.person_id).where(I.id_blind == bindparam("k_blind"), I.id != bindparam("k_id")).order_by(I.id)
open_review = select(reviews.c.id).where(reviews.c.identity_id == bindparam("k_id"),
                                         reviews.c.person_id == bindparam("k_person"))
close_reviews = update(reviews).where(reviews.c.identity_id == bindparam("k_id"), reviews.c.status == "open",
                                      reviews.c.person_id == bindparam("k_person"))
count_identities = select(func.count()).select_from(identities)
count_name = select(func.count()).select_from(identities).where(I.name == bindparam("k_name"))


@lru_cache(maxsize=8)
def candidates(birth: bool, phone: bool, name: bool, limit: int) -> Select:  # type: ignore[type-arg]
    """Identities of other persons sharing a birth date, phone or name (whichever `me` has)."""
    blocks = ([I.birth_date == bindparam("k_birth")] if birth else []) + \
        ([I.phone_blind == bindparam("k_phone")] if phone else []) + ([I.name == bindparam("k_name")] if name else [])
    return select(identities).where(and_(or_(*blocks), I.person_id != bindparam("k_person"))).limit(limit)
