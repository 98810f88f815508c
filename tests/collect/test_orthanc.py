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

from benchmarks.collect import SyntheticPacs
from benchmarks.net import YunyingServer, free_port
from tests.collect.conftest import run, source, start_collecting, study_counts
from tests.conftest import missing_tool

orthanc_mod = pytest.importorskip("benchmarks.orthanc")


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
                           peers={"ORTHANC": orthanc.dimse_port}, dimse_port=ours)
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
