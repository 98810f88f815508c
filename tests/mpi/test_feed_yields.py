"""Issue 9: the master index feed links patients once stores pause, not between them."""
from __future__ import annotations

import time
from typing import Any

from index.model import InstanceRecord, Origin
from yunying.mpi import feed
from yunying.mpi.feed import Feeder


class Recorder:
    """Stands in for PatientIndex: remembers when each batch was linked."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, int]] = []

    def observe_many(self, facts: list[Any]) -> list[Any]:
        self.calls.append((time.monotonic(), len(facts)))
        return []


def record(i: int) -> InstanceRecord:
    js = {"00100020": {"vr": "LO", "Value": [f"P{i}"]}, "00100010": {"vr": "PN", "Value": [{"Alphabetic": "A^B"}]}}
    return InstanceRecord(json=js, transfer_syntax="1.2.840.10008.1.2.1", pixel_form="none", frames=0, size=1,
                          digest="0", storage_key="k", origin=Origin("dimse", "AE"))


def test_linking_waits_for_a_pause_in_the_stores(monkeypatch: Any) -> None:
    monkeypatch.setattr(feed, "QUIET_S", 0.3)
    index = Recorder()
    feeder = Feeder(index)  # type: ignore[arg-type]
    try:
        start = time.monotonic()
        for i in range(10):  # a store every 0.1 s for a second: never quiet for 0.3 s
            feeder(record(i), None)
            time.sleep(0.1)
        last_store = time.monotonic()
        assert index.calls == []  # nothing linked while the stores kept coming
        deadline = time.monotonic() + 5
        while sum(n for _, n in index.calls) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sum(n for _, n in index.calls) == 10 and index.calls[0][0] >= last_store
        assert last_store - start >= 0.9
    finally:
        feeder.close()


def test_drain_links_at_once(monkeypatch: Any) -> None:
    monkeypatch.setattr(feed, "QUIET_S", 30.0)
    index = Recorder()
    feeder = Feeder(index)  # type: ignore[arg-type]
    try:
        feeder(record(1), None)
        t = time.monotonic()
        feeder.drain()
        assert sum(n for _, n in index.calls) == 1 and time.monotonic() - t < 5
    finally:
        feeder.close()


def test_a_patient_is_queued_again_only_when_their_facts_change(monkeypatch: Any) -> None:
    """The feed remembers hashes of what it queued (issue 9 part 5), with the facts' meaning."""
    monkeypatch.setattr(feed, "QUIET_S", 30.0)
    index = Recorder()
    feeder = Feeder(index)  # type: ignore[arg-type]
    try:
        renamed = record(1)
        renamed.json["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": "A^C"}]}
        for rec in (record(1), record(1), record(2), record(1), renamed, renamed):
            feeder(rec, None)
        feeder.drain()
        assert sum(n for _, n in index.calls) == 3  # P1, P2, P1 renamed
    finally:
        feeder.close()
