"""Source PACS that misbehave (issue 15, bad input): one that refuses, one that never answers,
one that returns garbage, one that returns everything twice. A clear error on the jobs API,
nothing half-stored, nothing stored twice, and the archive keeps serving."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.collect import SyntheticPacs, silent_port
from benchmarks.net import YunyingServer
from tests.collect.conftest import api, job, run, source, start_collecting, study_counts


@pytest.fixture(scope="module")
def pacs() -> Iterator[dict[str, SyntheticPacs]]:
    out = {"refusing": SyntheticPacs(4, days=1, refuse=True, seed=2).start(),
           "garbage": SyntheticPacs(4, days=1, mode="garbage", seed=3, aet="GARBAGE").start(),
           "twice": SyntheticPacs(4, days=1, mode="duplicates", seed=4, aet="TWICE").start()}
    yield out
    for p in out.values():
        p.stop()


@pytest.fixture(scope="module")
def server(pacs: dict[str, SyntheticPacs], tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    port, stop = silent_port()
    sources = [source("refusing", "SYNTHPACS", pacs["refusing"].port),
               source("silent", "SILENT", port, timeout=2),
               source("garbage", "GARBAGE", pacs["garbage"].port, retrieve="get"),
               source("twice", "TWICE", pacs["twice"].port, retrieve="move")]
    srv = start_collecting(tmp_path_factory.mktemp("collect-bad") / "data", sources,
                           peers={"TWICE": pacs["twice"].port}, pacs=list(pacs.values()))
    yield srv
    srv.stop()
    stop.set()


def test_a_refusing_source_fails_the_run_with_the_reason(server: YunyingServer) -> None:
    done = run(server, "refusing", kind="sync")
    assert done["state"] == "failed" and "rejected" in done["error"], done
    assert any("rejected" in e for e in job(server, "refusing")["errors"])
    assert study_counts(server).keys().isdisjoint({"refusing"})


def test_a_silent_source_times_out_and_the_archive_keeps_serving(server: YunyingServer) -> None:
    started = time.monotonic()
    done = run(server, "silent", kind="sync")
    assert done["state"] == "failed" and "SILENT" in done["error"], done
    assert time.monotonic() - started < 30  # its 2 s timeouts, not forever
    with api(server) as c:
        assert c.get("/dicomweb/studies").status_code in (200, 204)


def test_garbage_matches_are_skipped_and_counted_the_rest_is_fetched(server: YunyingServer,
                                                                      pacs: dict[str, SyntheticPacs]) -> None:
    p = pacs["garbage"]
    done = run(server, "garbage", kind="sync")
    assert done["state"] == "done", done
    assert done["counts"]["garbage"] >= 1  # one bad study match, one bad series match per study
    held = study_counts(server)
    assert all(held.get(p.study_uid(i)) == 4 for i in range(p.studies))
    assert any("unusable" in e for e in job(server, "garbage")["errors"])


def test_duplicate_matches_and_sub_operations_store_each_instance_once(server: YunyingServer,
                                                                        pacs: dict[str, SyntheticPacs]) -> None:
    p = pacs["twice"]
    done = run(server, "twice", kind="sync")
    assert done["state"] == "done", done
    assert done["counts"]["duplicates"] >= p.studies  # every study match came twice
    held = study_counts(server)
    assert all(held.get(p.study_uid(i)) == 4 for i in range(p.studies)), held
    again = run(server, "twice", kind="sync")
    assert again["counts"].get("instances_fetched", 0) == 0


def test_a_bad_source_in_the_settings_is_refused_at_start(tmp_path: Path) -> None:
    from yunying.settings import SettingError, load_settings

    for bad, says in [({"name": "x", "aet": "A", "host": "h", "port": 0}, "port"),
                      ({"name": "x", "aet": "A", "host": "h", "port": 104, "schedule": "every day"}, "cron"),
                      ({"name": "x", "aet": "A", "host": "h", "port": 104, "retrieve": "push"}, "retrieve"),
                      ({"name": "x", "aet": "A" * 17, "host": "h", "port": 104}, "AE title"),
                      ({"name": "x", "aet": "A", "host": "h", "port": 104, "colour": 1}, "unknown")]:
        with pytest.raises(SettingError, match=says):
            load_settings(overrides={"data": tmp_path, "collect_sources": [bad]}, environ={})


VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=80),
                   st.lists(st.integers(), max_size=3), st.sampled_from(["2026-01-01", "sync", "backfill", "refresh"]))
BODIES = st.dictionaries(st.sampled_from(["kind", "until", "start", "patient_id", "accession", "study", "x"]),
                         VALUES, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(BODIES.map(json.dumps), st.binary(max_size=64).map(lambda b: b.decode("latin-1"))),
       source=st.sampled_from(["refusing", "silent", "nope", "..", "%00"]))
def test_no_run_request_gets_a_5xx(server: YunyingServer, body: str, source: str) -> None:
    with api(server) as c:
        r = c.post(f"/api/collect/sources/{source}/runs", content=body.encode("utf-8"),
                   headers={"Content-Type": "application/json"})
        assert r.status_code in (202, 400, 404, 405, 409), r.text  # 405: ".." resolved by the client
        for path in (f"/api/lifecycle/studies/{source}", f"/api/lifecycle/refetch/{source}"):
            assert c.get(path).status_code in (400, 404, 405)
