"""The router: matches stored instances against the rules, queues forwards in the app-state
store, and sends them from one worker thread with retries and exponential backoff.

At least once: a matching instance's queue row is committed before the archive's store call
returns, that is before the C-STORE-RSP or the STOW-RS response acknowledges it (one writer
thread commits everything that arrived meanwhile in one transaction: a group commit, so
concurrent stores share one fsync; no rule, no cost). A row is marked done only after the
destination acknowledged it, so a crash or restart resends what was in flight (destinations
keep one copy per SOP Instance UID). Only when the app-state store itself is unavailable for
longer than COMMIT_WAIT_S does a store return with its forwards still held in memory (logged).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from index.model import InstanceRecord
from yunying.errors import ArchiveError
from yunying.routing.outgoing import Outgoing, Sender, offer_for
from yunying.routing.rules import Match, Rule, facts_of
from yunying.routing.schema import flags, queue, rules

log = logging.getLogger("yunying.routing")
BATCH = 64  # instances per association / STOW request
COMMIT_WAIT_S = 30.0  # the longest a store waits for its forwards' commit (the store being away)
MAX_BACKOFF = 3600
# The sender wakes when this process's forwards are committed (`flush`), a rule is resumed or
# items are retried; IDLE_S is only the fallback poll: how soon it sees a change made by
# another process (the `yunying routing` CLI) in the shared store.
IDLE_S = 2.0


class UnknownRule(ArchiveError):
    http_status = 404


def _now() -> int:
    return int(time.time())


def rule_of(row: Any) -> Rule:
    m = row.match or {}
    return Rule(row.id, row.name, bool(row.enabled), Match(
        tuple(m.get("source_aes", ())), tuple(m.get("modalities", ())), tuple(m.get("hospitals", ())),
        tuple(m.get("body_parts", ())), m.get("hours", "")), dict(row.destination), row.syntax)


class Router:
    """Owns the routing tables; `__call__` is the archive's stored-instance observer."""

    def __init__(self, archive: Any, engine: Engine, senders: dict[str, Sender], attempts: int = 8,
                 backoff: int = 5) -> None:
        import yunying.routing.schema  # noqa: F401 - registers the "routing" migrations
        from yunying.auth.store import Store

        Store(engine, None).migrate()
        self.archive, self.engine, self.senders = archive, engine, senders
        self.attempts, self.backoff = attempts, backoff
        self.rules: list[Rule] = []
        self.paused = False  # routing-wide: nothing is sent, forwards still queue
        self.last_run: dict[int, int] = {}
        self._wake = threading.Event()
        self._arrival = threading.Event()
        self._lock = threading.Lock()
        self._arrived: list[dict[str, Any]] = []  # forwards matched, not yet in the queue table
        self._committed_cond = threading.Condition(self._lock)
        self._arrivals = 0  # stores that matched a rule so far (numbered under _lock)
        self._committed = 0  # ... of which every forward is in the queue table
        self._resting: dict[int, float] = {}  # rule -> time before which its destination is not tried
        # held while one rule's batch is sent and while the rules are read again: a pause through
        # the API (which commits, then reloads) returns only once no send is under way, and each
        # rule's send reads the committed rules first (a pass that selected its rows before the
        # pause does not send them; tests/routing/test_wake.py)
        self._sending = threading.RLock()
        self._stop = False
        self.reload()
        self._thread = threading.Thread(target=self._run, name="yunying-routing", daemon=True)
        self._thread.start()
        self._writer = threading.Thread(target=self._persist, name="yunying-routing-queue", daemon=True)
        self._writer.start()

    def wake(self) -> None:
        self._wake.set()

    def reload(self) -> None:
        """Read the rules and the pause switch again (after an API change; every sending pass,
        so what `yunying routing` changes in the store applies within IDLE_S)."""
        with self._sending, self.engine.connect() as conn:
            self.rules = [rule_of(r) for r in conn.execute(select(rules).order_by(rules.c.id))]
            self.paused = bool(conn.execute(select(flags.c.value).where(flags.c.name == "paused")).scalar())

    # -- receiving ---------------------------------------------------------------------------
    def __call__(self, record: InstanceRecord, result: Any) -> None:
        active = [r for r in self.rules if r.enabled]
        if not active:
            return
        facts = facts_of(record)
        now = datetime.now()
        matched = [r for r in active if r.match.admits(facts, now)]
        if not matched:
            return
        stamp = _now()
        rows = [{"rule_id": r.id, "study": facts["study"], "series": facts["series"], "sop": facts["sop"],
                 "state": "pending", "attempts": 0, "next_at": stamp, "last_error": "",
                 "created_at": stamp, "updated_at": stamp} for r in matched]
        with self._lock:
            self._arrived.extend(rows)
            self._arrivals += 1
            mine = self._arrivals
        self._arrival.set()
        # part of the acknowledgement: the sender hears "stored" only once its forwards are
        # committed, so a crash right after the C-STORE-RSP / STOW-RS 200 still forwards it
        with self._committed_cond:
            if not self._committed_cond.wait_for(lambda: self._committed >= mine or self._stop,
                                                 timeout=COMMIT_WAIT_S):
                log.error("routing: forwards of a stored instance not committed within %.0f s; held in memory",
                          COMMIT_WAIT_S)

    def _persist(self) -> None:
        """Group commit of arrived forwards: whatever arrived while the previous commit ran
        goes in the next one, so concurrent stores share one transaction and its fsync."""
        while True:
            self._arrival.wait()
            self._arrival.clear()
            self.flush()
            if self._stop:
                return

    def flush(self) -> None:
        """Write the forwards that arrived so far to the queue table."""
        with self._lock:
            rows, self._arrived = self._arrived, []
            upto = self._arrivals
        if rows:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(queue), rows)
            except Exception as exc:  # noqa: BLE001 - the store is away: keep them, try again
                log.error("routing: %d forward(s) not queued yet: %s", len(rows), type(exc).__name__)
                with self._lock:
                    self._arrived[:0] = rows
                time.sleep(1)
                self._arrival.set()
                return
        with self._committed_cond:
            self._committed = max(self._committed, upto)
            self._committed_cond.notify_all()
        if rows:
            self._wake.set()  # the sender sends them now, not at its next poll (tests/routing/test_wake.py)

    # -- sending -----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop:
            try:
                self.reload()
                worked = self.run_once()
            except Exception as exc:  # noqa: BLE001 - the store went away for a moment: try again
                log.error("routing pass failed: %s", type(exc).__name__)
                worked = False
            if not worked:
                self._wake.wait(timeout=self._idle())
                self._wake.clear()

    def _held(self) -> list[int]:
        """Rules not to send for now: paused, or resting after their destination failed whole."""
        now = time.time()
        return [r.id for r in self.rules if self.paused or not r.enabled or self._resting.get(r.id, 0) > now]

    def _idle(self) -> float:
        held = self._held()
        with self.engine.connect() as conn:
            due = conn.execute(select(func.min(queue.c.next_at)).where(
                queue.c.state == "pending", queue.c.rule_id.notin_(held))).scalar()
        wake = [t for t in self._resting.values() if t > time.time()] + ([due] if due is not None else [])
        return IDLE_S if not wake else min(IDLE_S, max(0.05, min(wake) - time.time()))

    def run_once(self) -> bool:
        """Send one batch of due forwards per rule; True when something was tried."""
        with self.engine.connect() as conn:
            due = list(conn.execute(select(queue).where(
                queue.c.state == "pending", queue.c.next_at <= _now(), queue.c.rule_id.notin_(self._held()))
                .order_by(queue.c.id).limit(BATCH * 4)))
        groups: dict[int, list[Any]] = {}
        for row in due:
            groups.setdefault(row.rule_id, []).append(row)
        for rule_id, rows in groups.items():
            with self._sending:
                self.reload()  # the rules as committed now, not as when the rows were selected
                rule = next((r for r in self.rules if r.id == rule_id), None)
                if rule is None:
                    self._finish(rows, {r.sop: "rule deleted" for r in rows}, final=True)
                elif rule_id not in self._held():
                    self._send(rule, rows[:BATCH])
        return bool(due)

    def _send(self, rule: Rule, rows: Sequence[Any]) -> None:
        if rule.destination["kind"] not in self.senders:
            # the composition root adds the C-STORE sender once the app is built, after this
            # thread starts: not a failed attempt, wait for it (a process without one never sends)
            self._resting[rule.id] = time.time() + 1.0
            return
        self.last_run[rule.id] = _now()
        items: list[Outgoing] = []
        missing: dict[str, str | None] = {}
        for row in rows:
            try:
                inst = self.archive.instance(row.study, row.series, row.sop)
            except ArchiveError:  # deleted since it was queued: nothing left to send
                missing[row.sop] = "no longer stored"
                continue
            items.append(Outgoing(inst.sop_class, inst.sop, offer_for(inst.transfer_syntax, rule.syntax,
                                                                       rule.destination["kind"]),
                                  partial(self.archive.read_part10, inst), inst.size))
        if missing:
            self._finish([r for r in rows if r.sop in missing], missing, final=True)
        rows = [r for r in rows if r.sop not in missing]
        if not items:
            return
        sender = self.senders.get(rule.destination["kind"])
        try:
            if sender is None:
                raise RuntimeError(f"no {rule.destination['kind']} sender in this process")
            outcome = sender(rule.destination, items)
        except Exception as exc:  # noqa: BLE001 - every kind of network failure: retry later
            reason = str(exc)[:250] or type(exc).__name__
            outcome = {r.sop: reason for r in rows}
            # the destination is away: what arrives for it meanwhile waits too (no association
            # attempt per arriving instance), as long as its earliest row's backoff
            tries = min(r.attempts for r in rows) + 1
            self._resting[rule.id] = time.time() + min(MAX_BACKOFF, self.backoff * 2 ** (tries - 1))
        else:
            self._resting.pop(rule.id, None)
        self._finish(rows, outcome)

    def _finish(self, rows: Sequence[Any], outcome: dict[str, str | None], final: bool = False) -> None:
        now = _now()
        with self.engine.begin() as conn:
            for row in rows:
                error = outcome.get(row.sop, "no answer for this instance")
                if error is None:
                    conn.execute(update(queue).where(queue.c.id == row.id).values(
                        state="done", attempts=row.attempts + 1, last_error="", updated_at=now))
                    continue
                tries = row.attempts + 1
                failed = final or tries >= self.attempts
                wait = min(MAX_BACKOFF, self.backoff * 2 ** (tries - 1))
                conn.execute(update(queue).where(queue.c.id == row.id).values(
                    state="failed" if failed else "pending", attempts=tries, next_at=now + wait,
                    last_error=error[:300], updated_at=now))
        if any(outcome.get(r.sop) for r in rows):
            log.info("routing: %d of %d forward(s) not accepted; will retry unless failed",
                     sum(1 for r in rows if outcome.get(r.sop)), len(rows))

    # -- operating ---------------------------------------------------------------------------
    def retry(self, rule_id: int | None = None) -> int:
        """Failed forwards (of one rule, or all) queued again now; returns how many."""
        q = update(queue).where(queue.c.state == "failed")
        if rule_id is not None:
            q = q.where(queue.c.rule_id == rule_id)
        with self.engine.begin() as conn:
            n = conn.execute(q.values(state="pending", attempts=0, next_at=_now(), updated_at=_now())).rowcount
        for rid in ([rule_id] if rule_id is not None else list(self._resting)):
            self._resting.pop(rid, None)
        self._wake.set()
        return int(n or 0)

    def send_study(self, rule_id: int, study: str) -> int:
        """Queue every instance of a stored study for a rule now (a manual forward, or a resend)."""
        if rule_id not in {r.id for r in self.rules}:
            raise UnknownRule(f"rule {rule_id}: unknown")
        rows = self.archive.instances(study)  # UnknownResource (404) when not stored
        stamp = _now()
        with self.engine.begin() as conn:
            conn.execute(insert(queue), [
                {"rule_id": rule_id, "study": r.study, "series": r.series, "sop": r.sop, "state": "pending",
                 "attempts": 0, "next_at": stamp, "last_error": "", "created_at": stamp, "updated_at": stamp}
                for r in rows])
        self._wake.set()
        return len(rows)

    def counts(self) -> dict[int, dict[str, int]]:
        return queue_counts(self.engine)

    def stop(self) -> None:
        """Queue what arrived (a graceful stop loses nothing), then stop sending."""
        self._stop = True
        self._arrival.set()
        self._writer.join(timeout=30)
        self.flush()
        with self._committed_cond:
            self._committed_cond.notify_all()
        self._wake.set()
        self._thread.join(timeout=30)


def queue_counts(engine: Engine) -> dict[int, dict[str, int]]:
    """Queue rows per rule and state."""
    with engine.connect() as conn:
        rows = conn.execute(select(queue.c.rule_id, queue.c.state, func.count())
                            .group_by(queue.c.rule_id, queue.c.state))
        out: dict[int, dict[str, int]] = {}
        for rule_id, state, n in rows:
            out.setdefault(rule_id, {"pending": 0, "done": 0, "failed": 0, "dropped": 0})[state] = n
        return out
