"""Q/R collectors against a pynetdicom source PACS (issue 15 part 1): fetch what is missing,
by C-MOVE and C-GET, on demand for one accession; a re-run stores nothing twice."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.collect import SyntheticPacs
from benchmarks.net import REPO_ROOT, YunyingServer
from tests.collect.conftest import api, job, run, source, start_collecting, study_counts, wait_run


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


def test_the_cli_shows_progress_and_errors(server: YunyingServer) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "YUNYING_API_KEY": server.api_key}
    cli = [sys.executable, "-m", "yunying.cli", "collect"]
    done = subprocess.run([*cli, "sync", "pacs", "--wait", "--url", server.http_url], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "pacs: sync started" in done.stdout and "pacs: idle" in done.stdout
    status = subprocess.run([*cli, "status", "--url", server.http_url], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert status.returncode == 0 and "pacs-get:" in status.stdout and "instances" in status.stdout
    refused = subprocess.run([*cli, "status", "--url", server.http_url], env={**env, "YUNYING_API_KEY": "wrong"},
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1 and "401" in refused.stderr


def test_a_schedule_starts_a_sync_by_itself(tmp_path: Path, pacs: SyntheticPacs) -> None:
    srv = start_collecting(tmp_path / "data", [source("cron", pacs.aet, pacs.port, retrieve="get",
                                                      schedule=["* * * * *"], window_days=0)])
    try:
        assert job(srv, "cron")["next_run"] - time.time() <= 60
        with api(srv) as c:
            ran = wait_run(c, "cron", set(), 90)  # at the next minute
        assert ran["kind"] == "sync" and ran["state"] == "done", ran
        assert job(srv, "cron")["last_run"] is not None
    finally:
        srv.stop()
