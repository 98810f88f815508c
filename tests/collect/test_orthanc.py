"""Orthanc (Debian package) as the source PACS (issue 15 part 1): C-FIND by day, C-MOVE into our
SCP, C-GET on our association; a re-run transfers nothing."""
from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.filewriter import dcmwrite

from benchmarks import orthanc as orthanc_mod
from benchmarks.collect import SyntheticPacs
from benchmarks.net import YunyingServer, free_port
from tests.collect.conftest import job, run, source, start_collecting, study_counts
from tests.conftest import missing_tool


def upload(orthanc: Any, data: SyntheticPacs, studies: range) -> None:
    with httpx.Client(base_url=orthanc.http_url, timeout=30, trust_env=False) as c:
        for i in studies:
            for s in range(data.series):
                for n in range(data.instances):
                    buf = io.BytesIO()
                    dcmwrite(buf, data.instance(i, s, n), enforce_file_format=True)
                    assert c.post("/instances", content=buf.getvalue()).status_code == 200


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, YunyingServer, SyntheticPacs]]:
    if not orthanc_mod.orthanc_available():
        missing_tool("Orthanc not installed")
    tmp: Path = tmp_path_factory.mktemp("collect-orthanc")
    ours = free_port()
    orthanc = orthanc_mod.start_orthanc(tmp / "orthanc", aet="ORTHANC", modalities={"YUNYING": ("127.0.0.1", ours)})
    data = SyntheticPacs(studies=8, days=4, seed=21)  # a generator only: Orthanc serves them
    upload(orthanc, data, range(6))
    srv = start_collecting(tmp / "data", [source("orthanc", "ORTHANC", orthanc.dimse_port, retrieve="move"),
                                          source("orthanc-get", "ORTHANC", orthanc.dimse_port, retrieve="get")],
                           peers={"ORTHANC": orthanc.dimse_port}, dimse_port=ours,
                           # 8 studies of ~5.3 kB end above the high-water mark (36 kB), the first 4 below
                           YUNYING_DELIVERY_CACHE_BYTES="40000", YUNYING_CACHE_CHECK_S="3600")
    yield orthanc, srv, data
    srv.stop()
    orthanc.stop()


def test_sync_from_orthanc_by_c_move_then_nothing_again(setup: tuple[Any, YunyingServer, SyntheticPacs]) -> None:
    _orthanc, srv, data = setup
    done = run(srv, "orthanc", kind="sync")  # today and yesterday: studies 0, 1, 4, 5
    assert done["state"] == "done", done
    expected = {data.study_uid(i): 4 for i in (0, 1, 4, 5)}
    assert study_counts(srv) == expected
    assert done["counts"]["instances_fetched"] == 16
    again = run(srv, "orthanc", kind="sync")
    assert again["state"] == "done" and again["counts"].get("instances_fetched", 0) == 0
    assert again["counts"]["studies_up_to_date"] == 4  # Orthanc's NumberOfStudyRelatedInstances
    assert not job(srv, "orthanc")["errors"]  # Orthanc took the UID list of the four studies


def test_refresh_and_backfill_from_orthanc_by_c_get(setup: tuple[Any, YunyingServer, SyntheticPacs]) -> None:
    orthanc, srv, data = setup
    upload(orthanc, data, range(6, 8))  # new at the source: study 6 (dated two days ago), 7
    done = run(srv, "orthanc-get", kind="refresh", study=data.study_uid(6))
    assert done["state"] == "done" and done["counts"]["instances_fetched"] == 4, done
    assert study_counts(srv)[data.study_uid(6)] == 4
    done = run(srv, "orthanc-get", kind="backfill", start=data.today.isoformat(),
               until=data.study_date(3).isoformat())
    assert done["state"] == "done", done
    assert study_counts(srv) == {data.study_uid(i): 4 for i in range(8)}
    assert done["counts"]["instances_fetched"] == 4 * 3  # studies 2, 3, 7: the others were here
    assert not job(srv, "orthanc-get")["errors"]


def test_purge_checked_by_orthanc_then_refetched_from_it(setup: tuple[Any, YunyingServer, SyntheticPacs]) -> None:
    _orthanc, srv, data = setup
    with httpx.Client(base_url=srv.http_url, headers=srv.headers, timeout=60, trust_env=False) as c:
        report = c.post("/api/lifecycle/purge").json()
        assert report["purged"] >= 1 and report["kept_not_at_source"] == 0, report
        purged = [data.study_uid(i) for i in range(8)
                  if c.get(f"/api/lifecycle/studies/{data.study_uid(i)}").json()["purged"]]
        assert len(purged) == report["purged"] and purged[0] not in study_counts(srv)
        r = c.get(f"/dicomweb/studies/{purged[0]}/metadata")  # fetched back from Orthanc
        assert r.status_code == 200 and len(r.json()) == 4
        assert c.get(f"/api/lifecycle/studies/{purged[0]}").json()["purged"] is False
