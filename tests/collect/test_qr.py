"""Q/R collectors against a pynetdicom source PACS (issue 15 part 1): fetch what is missing,
by C-MOVE and C-GET, on demand for one accession; a re-run stores nothing twice."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.collect import SyntheticPacs
from benchmarks.net import YunyingServer
from tests.collect.conftest import api, job, run, source, start_collecting, study_counts


@pytest.fixture(scope="module")
def pacs() -> Iterator[SyntheticPacs]:
    p = SyntheticPacs(studies=12, days=6, series=2, instances=2).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def server(pacs: SyntheticPacs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    srv = start_collecting(tmp_path_factory.mktemp("collect-qr") / "data",
                           [source("pacs", pacs.aet, pacs.port, retrieve="move", window_days=1, concurrency=2),
                            source("pacs-get", pacs.aet, pacs.port, retrieve="get", hospital="default")],
                           peers={pacs.aet: pacs.port}, pacs=[pacs])
    yield srv
    srv.stop()


def test_sync_fetches_today_and_yesterday_then_nothing_again(server: YunyingServer, pacs: SyntheticPacs) -> None:
    first = run(server, "pacs", kind="sync")
    assert first["state"] == "done", first
    expected = {pacs.study_uid(i): 4 for i in range(pacs.studies) if i % pacs.days in (0, 1)}
    held = study_counts(server)
    assert {k: v for k, v in held.items() if k in expected} == expected
    assert first["counts"]["instances_fetched"] == sum(expected.values())
    served = pacs.served
    again = run(server, "pacs", kind="sync")
    assert again["state"] == "done"
    assert again["counts"].get("instances_fetched", 0) == 0  # counts compared: nothing transferred
    assert again["counts"]["studies_up_to_date"] == len(expected)
    assert pacs.served == served


def test_backfill_by_c_get_walks_back_to_the_given_day(server: YunyingServer, pacs: SyntheticPacs) -> None:
    oldest = pacs.study_date(pacs.days - 1)
    done = run(server, "pacs-get", kind="backfill", until=oldest.isoformat(), start=pacs.today.isoformat())
    assert done["state"] == "done", done
    held = study_counts(server)
    assert all(held.get(pacs.study_uid(i)) == 4 for i in range(pacs.studies)), held
    assert job(server, "pacs-get")["backfill_next"] is None  # finished: no checkpoint left


def test_refresh_one_accession_now(tmp_path: Path, pacs: SyntheticPacs) -> None:
    srv = start_collecting(tmp_path / "data", [source("pacs", pacs.aet, pacs.port, retrieve="get")])
    try:
        done = run(srv, "pacs", kind="refresh", accession=f"ACC{pacs.seed}{5:06d}")  # study number 4
        assert done["state"] == "done" and done["counts"]["instances_fetched"] == 4
        assert study_counts(srv) == {pacs.study_uid(4): 4}
    finally:
        srv.stop()


@pytest.mark.parametrize("body, says", [
    ({"kind": "now"}, "kind"), ({"kind": "refresh"}, "refresh needs"),
    ({"kind": "refresh", "patient_id": "P*"}, "wildcards"), ({"kind": "backfill", "until": "last week"}, "until"),
    ({"kind": "sync", "extra": 1}, "unknown field"),
])
def test_a_malformed_run_request_is_a_400_naming_the_field(server: YunyingServer, body: dict, says: str) -> None:
    with api(server) as c:
        r = c.post("/api/collect/sources/pacs/runs", json=body)
        assert r.status_code == 400 and says in r.json()["error"], r.text
        assert c.post("/api/collect/sources/pacs/runs", content=b"[1]").status_code == 400
        assert c.post("/api/collect/sources/nope/runs", json={"kind": "sync"}).status_code == 404
