"""The master index and the routing tables on PostgreSQL (the app-state store's other engine):
migrations, linking, review, undo, rules and the queue, through their public functions."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from index.model import Origin
from tests.dicomweb.helpers import make_ct, part10
from tests.records.conftest import pg_url  # noqa: F401 - a fresh database on the test cluster
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


def test_master_index_on_postgresql(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
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


def test_routing_tables_on_postgresql(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    engine = create_engine(pg_url)
    archive = Archive(tmp_path / "data")
    def accept_all(destination: dict[str, Any], items: Sequence[Outgoing]) -> dict[str, str | None]:
        return {i.sop: None for i in items}

    router = Router(archive, engine, {"dicomweb": accept_all})
    hook.subscribe(archive, router)
    try:
        rule = manage.create_rule(router, {"name": "web", "match": {"modalities": ["CT"]},
                                           "destination": {"kind": "dicomweb", "url": "http://peer"}})
        archive.store(part10(make_ct()), Origin("import", "test"))
        router.flush()
        assert router.run_once()
        assert router.counts()[rule["id"]]["done"] == 1
        manage.delete_rule(router, rule["id"])
        again = manage.create_rule(router, {"name": "web", "destination": {"kind": "dicomweb", "url": "http://peer"}})
        assert again["id"] != rule["id"]
    finally:
        router.stop()
        archive.close()
        engine.dispose()
