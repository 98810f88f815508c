"""A stored instance that matches a rule is forwarded when its queue row is committed, not at
the sender's next poll: with the poll interval at 60 s, an idle sender (seen waiting) sends
within 20 s. In-process: a real archive, the app-state store on SQLite, the Router's threads."""
from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from index.model import Origin
from tests.dicomweb.helpers import make_ct, part10
from yunying.archive import Archive
from yunying.auth.store import open_store
from yunying.routing import hook, manage
from yunying.routing import router as router_mod
from yunying.routing.outgoing import Outgoing
from yunying.routing.router import Router

POLL_S = 60.0  # far longer than the test waits: a forward that waits for the poll fails it
TIMEOUT_S = 20.0


class SpiedEvent(threading.Event):
    """The sender's wake event; `idle` is set each time the sender starts waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.idle = threading.Event()
        self.timeouts: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        self.idle.set()
        return super().wait(timeout)


@pytest.fixture
def routed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Archive, Router, list[str],
                                                                                threading.Event]]:
    monkeypatch.setattr(router_mod, "IDLE_S", POLL_S)
    archive = Archive(tmp_path / "data")
    store = open_store(tmp_path / "data")
    sent: list[str] = []
    arrived = threading.Event()

    def accept(destination: dict[str, Any], items: Sequence[Outgoing]) -> dict[str, str | None]:
        sent.extend(i.sop for i in items)
        arrived.set()
        return {i.sop: None for i in items}

    router = Router(archive, store.engine, {"dicomweb": accept})
    hook.subscribe(archive, router)
    try:
        yield archive, router, sent, arrived
    finally:
        router.stop()
        hook.unsubscribe(archive, router)
        archive.close()
        store.engine.dispose()


def idle_sender(router: Router) -> SpiedEvent:
    """Swap in the spied wake event, and return once the sender waits on it with nothing due."""
    spy, old = SpiedEvent(), router._wake
    router._wake = spy
    old.set()  # the sender's current wait (on the old event) ends; its next one is spied
    assert spy.idle.wait(TIMEOUT_S), "the sender never went idle"
    return spy


def test_a_routed_instance_leaves_on_its_commit_not_at_the_next_poll(routed) -> None:
    archive, router, sent, arrived = routed
    manage.create_rule(router, {"name": "web", "match": {"modalities": ["CT"]},
                                "destination": {"kind": "dicomweb", "url": "http://peer"}})
    spy = idle_sender(router)
    assert spy.timeouts[-1] == POLL_S and not sent  # waiting a whole poll interval, nothing queued
    ds = make_ct()
    archive.store(part10(ds), Origin("import", "test"))  # returns once its forward is committed
    assert arrived.wait(TIMEOUT_S), "forwarded only at the next poll"
    assert sent == [str(ds.SOPInstanceUID)]



def test_a_rule_paused_while_a_pass_sends_is_not_sent_by_that_pass(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """One pass selects the due rows of every rule, then sends rule by rule. A pause of rule B made
    while rule A's batch is being sent returns only after that send, and the pass then holds B's
    rows (it used to send them: the pass had read the rules before the pause)."""
    monkeypatch.setattr(router_mod, "IDLE_S", POLL_S)
    archive = Archive(tmp_path / "data")
    store = open_store(tmp_path / "data")
    sent: list[str] = []
    in_a, release_a = threading.Event(), threading.Event()

    def send(destination: dict[str, Any], items: Sequence[Outgoing]) -> dict[str, str | None]:
        if destination["url"] == "http://a":
            in_a.set()
            assert release_a.wait(TIMEOUT_S)
        sent.extend(f"{destination['url']} {i.sop}" for i in items)
        return {i.sop: None for i in items}

    router = Router(archive, store.engine, {"dicomweb": send})
    hook.subscribe(archive, router)
    try:
        for name in ("a", "b"):  # a first: its rows come first in the pass
            manage.create_rule(router, {"name": name, "match": {"modalities": ["CT"]},
                                        "destination": {"kind": "dicomweb", "url": f"http://{name}"}})
        b = next(r.id for r in router.rules if r.name == "b")
        ds = make_ct()
        archive.store(part10(ds), Origin("import", "test"))
        assert in_a.wait(TIMEOUT_S), "rule a was never sent"
        paused = threading.Thread(target=manage.update_rule, args=(router, b, {"enabled": False}))
        paused.start()
        paused.join(0.5)
        assert paused.is_alive(), "the pause returned while rule a's send (same pass) was under way"
        release_a.set()
        paused.join(TIMEOUT_S)
        assert not paused.is_alive()
        idle_sender(router)  # the pass is over
        assert sent == [f"http://a {ds.SOPInstanceUID}"]
        assert [r["state"] for r in manage.queue_items(router, rule_id=b)] == ["pending"]
    finally:
        release_a.set()
        router.stop()
        hook.unsubscribe(archive, router)
        archive.close()
        store.engine.dispose()
