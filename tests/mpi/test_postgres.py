"""The master index and the routing tables on PostgreSQL (the app-state store's other engine):
migrations, linking, review, undo, rules and the queue, through their public functions."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from index.model import Origin
from tests.dicomweb.helpers import make_ct, part10
from tests.routing.peers import wait_for
from yunying.archive import Archive
from yunying.auth.store import Store
from yunying.mpi.facts import PatientFacts
from yunying.mpi.linker import PatientIndex
from yunying.mpi.views import event_list, find_identities, review_items
from yunying.pii import keys_for
from yunying.records.idcard import check_character
from yunying.routing import hook, manage
from yunying.routing.outgoing import Outgoing
from yunying.routing.router import Router


def test_master_index_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    engine = create_engine(pg_url)
    Store(engine, None).migrate()
    index = PatientIndex(engine, keys_for(tmp_path / "data"))
    number = "11010519800101123" + check_character("11010519800101123")
    a = index.observe(PatientFacts("his", "A", "1", "h1", "张伟", "M", "19800101", number, "13800138000"))
    b = index.observe(PatientFacts("ris", "B", "9", "h2", "张伟", "", "", number, ""))
    c = index.observe(PatientFacts("pacs", "C", "5", "h2", "章伟", "M", "19800101"))
    assert b.person_id == a.person_id and b.link == "id" and c.link == "review"
    item = review_items(index)["items"][0]
    index.decide(item["id"], True, "user:t")
    assert index.person_of("C", "5") == a.person_id
    index.revert(event_list(index, c.identity_id)[0]["id"], "user:t")
    assert index.person_of("C", "5") == c.person_id
    assert len(index.observe_many([PatientFacts("x", "D", str(n), name=f"王{n}") for n in range(5)])) == 5
    found = [i for i in find_identities(index, "1") if i["issuer"] == "A"]  # D/1 matches "1" too (no number)
    assert len(found) == 1 and found[0]["id_number"].endswith(number[-4:])
    engine.dispose()


def test_routing_tables_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    engine = create_engine(pg_url)
    archive = Archive(tmp_path / "data")
    def accept_all(destination: dict[str, Any], items: Sequence[Outgoing]) -> dict[str, str | None]:
        return {i.sop: None for i in items}

    router = Router(archive, engine, {"dicomweb": accept_all})
    hook.subscribe(archive, router)
    try:
        rule = manage.create_rule(router, {"name": "web", "match": {"modalities": ["CT"]},
                                           "destination": {"kind": "dicomweb", "url": "http://peer"}})
        archive.store(part10(make_ct()), Origin("import", "test"))  # returns once its forward is queued
        assert router.counts()[rule["id"]]["pending"] + router.counts()[rule["id"]]["done"] == 1
        router.run_once()  # or the router's own thread, woken by the commit, sent it already
        assert wait_for(lambda: router.counts()[rule["id"]]["done"] == 1, 10)
        manage.delete_rule(router, rule["id"])
        again = manage.create_rule(router, {"name": "web", "destination": {"kind": "dicomweb", "url": "http://peer"}})
        assert again["id"] != rule["id"]
    finally:
        router.stop()
        archive.close()
        engine.dispose()


def test_concurrent_records_of_one_person_are_linked_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """Two processes (two engines, two indexes) each observe one record of the same person at
    the same moment, for many persons: without a lock, each transaction misses the other's
    uncommitted row under READ COMMITTED and the pair stays apart."""
    import threading

    engines = [create_engine(pg_url, pool_size=2) for _ in range(2)]
    Store(engines[0], None).migrate()
    keys = keys_for(tmp_path / "data")
    indexes = [PatientIndex(e, keys) for e in engines]
    pairs = 40
    numbers = [f"11010519800101{i:03d}" for i in range(pairs)]
    numbers = [n + check_character(n) for n in numbers]
    gate = threading.Barrier(2)
    errors: list[BaseException] = []

    def side(k: int) -> None:
        try:
            for i, number in enumerate(numbers):
                gate.wait(timeout=30)
                if i % 2:  # ID number links; every other pair by score (name + birth date + sex)
                    facts = PatientFacts(f"sys{k}", f"ISS{k}", f"P{i}", "h1", "", "", "", number)
                else:  # nothing shared with another pair: a distinct name and birth date each
                    facts = PatientFacts(f"sys{k}", f"ISS{k}", f"P{i}", "h1", "赵钱孙李周吴郑王冯陈"[i % 10]
                                         + "伟芳娜敏静丽强磊军洋"[i // 10], "M", f"1970{1 + i // 28:02d}{1 + i % 28:02d}")
                indexes[k].observe(facts)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            gate.abort()

    threads = [threading.Thread(target=side, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    apart = [i for i in range(pairs) if indexes[0].person_of("ISS0", f"P{i}") != indexes[0].person_of("ISS1", f"P{i}")]
    assert apart == []
    for e in engines:
        e.dispose()
