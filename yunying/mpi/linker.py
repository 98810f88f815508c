"""The patient master index: identities observed, linked to persons, reviewed, undone.

Linking an identity seen for the first time (or whose facts changed and that no one linked by
hand): (1) a valid resident ID number shared with another identity links deterministically;
(2) otherwise candidates sharing a birth date, phone or name (blocking) are scored
(yunying.mpi.scoring); the best person at or above `upper` is linked automatically, one between
`lower` and `upper` becomes a review item; (3) else the identity is a person of its own.
Two identities with different valid ID numbers are never linked by score.

Every change is serialized by one lock (`_writing`): a thread lock in this process, and on
PostgreSQL also a transaction-level advisory lock, which other processes sharing the database
take too. Without it, two records of one person committed at the same moment each miss the
other's uncommitted row (READ COMMITTED) and the pair stays apart until the next record. On
SQLite the server is the index's one writing process (`yunying mpi rebuild` wants it stopped),
so the thread lock orders every writer.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from yunying.errors import ArchiveError
from yunying.mpi import statements as st
from yunying.mpi.facts import PatientFacts
from yunying.mpi.schema import events, identities, persons, reviews
from yunying.mpi.scoring import Demographics, name_frequency_adjustment, score
from yunying.pii import PiiKeys
from yunying.records.idcard import InvalidIdCard, parse_id_card

AUTO = "mpi"  # the actor of automatic links
MAX_CANDIDATES = 500
ADVISORY_KEY = 0x59594D5049  # "YYMPI": PostgreSQL's advisory lock of the master index's writers


class MpiError(ArchiveError):
    """A request the index cannot carry out (unknown identity, person, review or event)."""

    http_status = 404


class MpiInvalid(MpiError):
    http_status = 400


class MpiConflict(MpiError):
    http_status = 409


@dataclass(frozen=True)
class Observed:
    identity_id: int
    person_id: str
    link: str  # new | id | auto | manual | review (a person of its own, with a review item)
    score: float | None = None
    changed: bool = True


def _now() -> int:
    return int(time.time())


def new_person_id() -> str:
    return secrets.token_hex(8)


class PatientIndex:
    """Thread-safe: each call is one transaction on the app-state store."""

    def __init__(self, engine: Engine, keys: PiiKeys, upper: float = 20.0, lower: float = 12.0,
                 tf_minimum: int = 10_000) -> None:
        import yunying.mpi.schema  # noqa: F401 - registers the "mpi" migrations
        from yunying.auth.store import Store

        Store(engine, None).migrate()
        self.engine, self.keys, self.upper, self.lower = engine, keys, upper, lower
        self.tf_minimum = tf_minimum  # records before names' frequencies adjust their weight
        self._total: tuple[float, int] = (0.0, 0)  # (when counted, identities): counted once a minute
        self._lock = threading.Lock()
        # identities counted in the open transaction, plus its own inserts since: while it holds the
        # writers' lock no one else adds any and none is ever deleted, so this is what COUNT(*)
        # would answer (a full count per record was a fifth of linking's CPU below tf_minimum)
        self._counted: int | None = None

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """One transaction that changes the index, serialized with every other such transaction
        of any process (see the module's docstring); linking one record takes ~2 ms."""
        with self._lock, self.engine.begin() as conn:
            self._counted = None
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_KEY})
            yield conn

    # -- observing ----------------------------------------------------------------------
    def observe(self, facts: PatientFacts) -> Observed:
        """Record (or refresh) one system's record of a patient and link it."""
        facts = facts.cleaned()
        if not facts.patient_id or not facts.issuer:
            raise MpiInvalid("a patient record needs patient_id and issuer")
        for attempt in range(2):
            try:
                with self._writing() as conn:
                    return self._observe(conn, facts)
            except IntegrityError:  # another thread inserted the same identity first
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def observe_many(self, many: list[PatientFacts]) -> list[Observed]:
        """observe() for several records in one transaction (a commit costs ~15 ms here, the
        linking itself ~2 ms); one by one when another writer raced this batch."""
        cleaned = [f.cleaned() for f in many]
        if not all(f.patient_id and f.issuer for f in cleaned):
            return [self.observe(f) for f in many]  # each bad record refused on its own
        try:
            with self._writing() as conn:
                return [self._observe(conn, f) for f in cleaned]
        except IntegrityError:
            return [self.observe(f) for f in many]

    def _values(self, facts: PatientFacts) -> dict[str, Any]:
        card = None
        if facts.id_number:
            try:
                card = parse_id_card(facts.id_number)
            except InvalidIdCard:
                pass  # kept as id_invalid, never used to link
        valid = card is not None
        birth, sex = facts.birth_date, facts.sex
        if card is not None:  # the ID number states both; a record missing them takes them from it
            birth, sex = birth or card.birth_date, sex or card.sex
        return {
            "source": facts.source, "hospital": facts.hospital, "name": facts.name, "sex": sex,
            "birth_date": birth,
            "id_sealed": self.keys.seal(facts.id_number, "mpi.id") if valid else None,
            "id_blind": self.keys.blind("id", facts.id_number) if valid else None,
            "id_invalid": int(bool(facts.id_number) and not valid),
            "phone_sealed": self.keys.seal(facts.phone, "mpi.phone") if facts.phone else None,
            "phone_blind": self.keys.blind("phone", facts.phone) if facts.phone else None,
        }

    def _observe(self, conn: Connection, facts: PatientFacts) -> Observed:
        values = self._values(facts)
        row = conn.execute(st.identity_by_key, {"k_issuer": facts.issuer, "k_pid": facts.patient_id}).first()
        compared = ("name", "sex", "birth_date", "id_blind", "phone_blind", "hospital")
        if row is not None:
            same = all(getattr(row, k) == values[k] for k in compared)
            if same:
                return Observed(row.id, row.person_id, row.link, row.score, changed=False)
            conn.execute(st.update_identity, {**values, "updated_at": _now(), "k_id": row.id})
            if row.link == "manual":  # a person decided: facts changing do not undo it
                return Observed(row.id, row.person_id, row.link, row.score)
            identity_id, current, link = row.id, row.person_id, row.link
        else:
            current = new_person_id()
            conn.execute(st.insert_person, {"id": current, "created_at": _now()})
            identity_id = conn.execute(st.insert_identity, {
                "issuer": facts.issuer, "patient_id": facts.patient_id, "person_id": current, "link": "new",
                "updated_at": _now(), **values}).inserted_primary_key[0]  # type: ignore[index]
            if self._counted is not None:
                self._counted += 1
            self._event(conn, AUTO, "create", identity_id, None, current, "new", None, "first seen")
            link = "new"
        # the row as just written, without reading it back (one statement fewer per record)
        return self._link(conn, identity_id, current, SimpleNamespace(**values, person_id=current, link=link))

    def _link(self, conn: Connection, identity_id: int, current: str, me: Any) -> Observed:
        if me.id_blind:
            other = conn.execute(st.same_id_number, {"k_blind": me.id_blind, "k_id": identity_id}).first()
            if other is not None:
                return self._move(conn, identity_id, current, other.person_id, "id", None, AUTO,
                                  "same resident ID number")
        best: tuple[float, str, dict[str, str]] | None = None
        mine = _demographics(me)
        common: float | None = None
        for cand in self._candidates(conn, me):
            if me.id_blind and cand.id_blind and cand.id_blind != me.id_blind:
                continue  # two different valid ID numbers: two people
            weight, levels = score(mine, _demographics(cand))
            if levels.get("name") == "exact":
                common = self._name_adjustment(conn, me.name) if common is None else common
                weight += common
            if best is None or weight > best[0]:
                best = (weight, cand.person_id, levels)
        if best is not None and best[0] >= self.upper:
            return self._move(conn, identity_id, current, best[1], "auto", best[0], AUTO,
                              "score " + _levels(best[2]))
        if best is not None and best[0] >= self.lower:
            exists = conn.execute(st.open_review, {"k_id": identity_id, "k_person": best[1]}).first()
            if exists is None:
                conn.execute(st.insert_review, {"identity_id": identity_id, "person_id": best[1], "score": best[0],
                                                "levels": _levels(best[2]), "created_at": _now()})
            return Observed(identity_id, current, "review", best[0])
        return Observed(identity_id, current, me.link)

    def _name_adjustment(self, conn: Connection, name: str) -> float:
        when, total = self._total
        if time.monotonic() - when > 60 or total < self.tf_minimum:  # a small registry counts fast
            if self._counted is None:
                self._counted = int(conn.execute(st.count_identities).scalar() or 0)
            total = self._counted
            self._total = (time.monotonic(), total)
        if total < self.tf_minimum:
            return 0.0
        same = int(conn.execute(st.count_name, {"k_name": name}).scalar() or 0)
        return name_frequency_adjustment(same, total, self.tf_minimum)

    def _candidates(self, conn: Connection, me: Any) -> list[Row]:
        if not (me.birth_date or me.phone_blind or me.name):
            return []
        query = st.candidates(bool(me.birth_date), bool(me.phone_blind), bool(me.name), MAX_CANDIDATES)
        return list(conn.execute(query, {"k_birth": me.birth_date, "k_phone": me.phone_blind, "k_name": me.name,
                                         "k_person": me.person_id}))

    def _move(self, conn: Connection, identity_id: int, from_person: str | None, to_person: str, link: str,
              weight: float | None, actor: str, reason: str, action: str = "link") -> Observed:
        conn.execute(st.update_identity, {"person_id": to_person, "link": link, "score": weight,
                                          "updated_at": _now(), "k_id": identity_id})
        conn.execute(st.close_reviews, {"status": "linked", "decided_by": actor, "decided_at": _now(),
                                        "k_id": identity_id, "k_person": to_person})
        self._event(conn, actor, action, identity_id, from_person, to_person, link, weight, reason)
        return Observed(identity_id, to_person, link, weight)

    @staticmethod
    def _event(conn: Connection, actor: str, action: str, identity_id: int, from_person: str | None,
               to_person: str, link: str, weight: float | None, reason: str) -> int:
        done = conn.execute(st.insert_event, {
            "at": _now(), "actor": actor[:64], "action": action, "identity_id": identity_id,
            "from_person": from_person, "to_person": to_person, "link": link, "score": weight,
            "reason": reason[:200]})
        return int(done.inserted_primary_key[0])  # type: ignore[index]

    # -- deciding by hand -------------------------------------------------------------------
    def _identity(self, conn: Connection, identity_id: int) -> Row:
        row = conn.execute(select(identities).where(identities.c.id == identity_id)).first()
        if row is None:
            raise MpiError(f"identity {identity_id}: unknown")
        return row

    def link(self, identity_id: int, person_id: str, actor: str, reason: str = "") -> Observed:
        """Move an identity to a person, by hand."""
        with self._writing() as conn:
            me = self._identity(conn, identity_id)
            if conn.execute(select(persons.c.id).where(persons.c.id == person_id)).first() is None:
                raise MpiError(f"person {person_id}: unknown")
            if me.person_id == person_id:
                raise MpiConflict("the identity already belongs to that person")
            return self._move(conn, identity_id, me.person_id, person_id, "manual", None, actor,
                              reason or "linked by hand")

    def unlink(self, identity_id: int, actor: str, reason: str = "") -> Observed:
        """Take an identity out of its person into a person of its own."""
        with self._writing() as conn:
            me = self._identity(conn, identity_id)
            others = conn.execute(select(identities.c.id).where(
                identities.c.person_id == me.person_id, identities.c.id != identity_id)).first()
            if others is None:
                raise MpiConflict("the identity is its person's only one")
            fresh = new_person_id()
            conn.execute(insert(persons).values(id=fresh, created_at=_now()))
            return self._move(conn, identity_id, me.person_id, fresh, "manual", None, actor,
                              reason or "unlinked by hand", action="unlink")

    def decide(self, review_id: int, accept: bool, actor: str) -> dict[str, Any]:
        """Link (accept) or reject a review item."""
        with self._writing() as conn:
            item = conn.execute(select(reviews).where(reviews.c.id == review_id)).first()
            if item is None:
                raise MpiError(f"review {review_id}: unknown")
            if item.status != "open":
                raise MpiConflict(f"review {review_id} is already {item.status}")
            if accept:
                me = self._identity(conn, item.identity_id)
                self._move(conn, item.identity_id, me.person_id, item.person_id, "manual", item.score, actor,
                           f"review {review_id} accepted")
            else:
                conn.execute(update(reviews).where(reviews.c.id == review_id).values(
                    status="rejected", decided_by=actor[:64], decided_at=_now()))
        return {"review": review_id, "status": "linked" if accept else "rejected"}

    def revert(self, event_id: int, actor: str) -> Observed:
        """Undo a link or unlink: the identity goes back to the person it left."""
        with self._writing() as conn:
            ev = conn.execute(select(events).where(events.c.id == event_id)).first()
            if ev is None:
                raise MpiError(f"event {event_id}: unknown")
            if ev.reverted_by is not None or ev.from_person is None:
                raise MpiConflict(f"event {event_id} cannot be reverted (already reverted, or a creation)")
            me = self._identity(conn, ev.identity_id)
            if me.person_id != ev.to_person:
                raise MpiConflict(f"identity {ev.identity_id} has moved since event {event_id}: revert the later one")
            if conn.execute(select(persons.c.id).where(persons.c.id == ev.from_person)).first() is None:
                conn.execute(insert(persons).values(id=ev.from_person, created_at=_now()))
            done = self._move(conn, ev.identity_id, ev.to_person, ev.from_person, "manual", None, actor,
                              f"revert of event {event_id}", action="revert")
            last = conn.execute(select(events.c.id).where(events.c.identity_id == ev.identity_id)
                                .order_by(events.c.id.desc())).scalar()
            conn.execute(update(events).where(events.c.id == event_id).values(reverted_by=last))
            return done

    # -- reading -----------------------------------------------------------------------------
    def person_of(self, issuer: str, patient_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(identities.c.person_id).where(
                identities.c.issuer == issuer, identities.c.patient_id == patient_id)).scalar()

    def members(self, person_id: str) -> list[tuple[str, str]]:
        """(issuer, patient_id) of every identity of a person."""
        with self.engine.connect() as conn:
            return [(r.issuer, r.patient_id) for r in conn.execute(
                select(identities.c.issuer, identities.c.patient_id).where(identities.c.person_id == person_id))]


def _demographics(row: Any) -> Demographics:
    return Demographics(row.name, row.sex, row.birth_date, row.phone_blind or "")


def _levels(levels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(levels.items()))
