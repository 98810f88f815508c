"""A collector killed with SIGKILL mid-backfill resumes from its checkpoint at the next start
and ends with every instance stored exactly once (issue 15 part 1)."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from benchmarks.collect import SyntheticPacs
from benchmarks.net import free_port
from tests.collect.conftest import api, job, run, source, start_collecting, study_counts, wait_run


def test_a_killed_backfill_resumes_without_duplicates(tmp_path: Path) -> None:
    pacs = SyntheticPacs(studies=40, days=20, series=2, instances=2, seed=7).start()
    port = free_port()
    # ~1.3 kB per instance at 0.1 Mbit/s: ~16 s in all, so the kill lands mid-way
    sources = [source("pacs", pacs.aet, pacs.port, retrieve="move", concurrency=2, bandwidth_mbit=0.1)]
    window: dict[str, Any] = {"start": pacs.today.isoformat(), "until": pacs.study_date(pacs.days - 1).isoformat()}
    data = tmp_path / "data"
    srv = start_collecting(data, sources, peers={pacs.aet: pacs.port}, pacs=[pacs], dimse_port=port)
    try:
        with api(srv) as c:
            assert c.post("/api/collect/sources/pacs/runs", json={"kind": "backfill", **window}).status_code == 202
            first = wait_run(c, "pacs", set(), 60, until=lambda r: r["counts"].get("instances_fetched", 0) >= 40)
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(10)
    finally:
        srv.stop()
    srv = start_collecting(data, sources, peers={pacs.aet: pacs.port}, pacs=[pacs], dimse_port=port)
    try:
        with api(srv) as c:
            runs = c.get("/api/collect/runs", params={"source": "pacs"}).json()["runs"]
            assert [r["state"] for r in runs if r["id"] == first["id"]] == ["interrupted"]
            resumed = wait_run(c, "pacs", {first["id"]}, 120)  # started by the server itself
        assert resumed["kind"] == "backfill" and resumed["state"] == "done", resumed
        assert study_counts(srv) == {pacs.study_uid(i): 4 for i in range(pacs.studies)}  # all, each once
        assert job(srv, "pacs")["backfill_next"] is None
        # the resumed run fetched only what was missing (the series in flight at the kill again)
        total = pacs.total_instances()
        assert resumed["counts"]["instances_fetched"] < total
        assert first["counts"]["instances_fetched"] + resumed["counts"]["instances_fetched"] <= total + 2 * 2 * 2
        served = pacs.served
        again = run(srv, "pacs", kind="backfill", start=window["start"], until=window["until"])  # all once more
        assert again["counts"].get("instances_fetched", 0) == 0 and pacs.served == served
    finally:
        srv.stop()
        pacs.stop()
