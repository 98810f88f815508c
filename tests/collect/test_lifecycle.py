"""Delivery cache and re-fetch (issue 15 part 6): purge oldest-first from the high- to the
low-water mark, only what the source still holds (C-FIND counts); a later WADO-RS or QIDO-RS
request re-fetches a purged study transparently; a study the source lost answers 503 with the
re-fetch's progress, never a 404 or a 500. Retention: deletion only after it ends."""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import httpx
import pytest

from benchmarks.collect import SyntheticPacs
from benchmarks.net import YunyingServer
from tests.collect.conftest import READER, api, run, source, start_collecting, study_counts


@pytest.fixture(scope="module")
def pacs() -> Iterator[SyntheticPacs]:
    p = SyntheticPacs(studies=6, days=3, series=2, instances=2, seed=9).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def old() -> Iterator[SyntheticPacs]:
    p = SyntheticPacs(studies=1, days=1, seed=10, aet="OLDPACS", today=date(2024, 12, 1)).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def server(pacs: SyntheticPacs, old: SyntheticPacs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    # six studies of ~5.3 kB: 20 kB of cache, purge above 18 kB down to 15 kB
    srv = start_collecting(tmp_path_factory.mktemp("lifecycle") / "data",
                           [source("pacs", pacs.aet, pacs.port, retrieve="get", window_days=2),
                            source("old", old.aet, old.port, retrieve="get")],
                           YUNYING_DELIVERY_CACHE_BYTES="20000", YUNYING_REFETCH_WAIT_S="20",
                           YUNYING_RETENTION_YEARS=json.dumps([{"class": "short", "years": 1}]),
                           YUNYING_RETENTION_RULES=json.dumps([{"class": "short", "when": {"StudyDate": "2024*"}}]),
                           YUNYING_CACHE_CHECK_S="3600")  # purged when the test says
    assert run(srv, "pacs", kind="sync")["state"] == "done"
    yield srv
    srv.stop()


def life(c: httpx.Client, study: str) -> dict:
    r = c.get(f"/api/lifecycle/studies/{study}")
    assert r.status_code == 200, r.text
    return r.json()


def test_purge_then_transparent_refetch(server: YunyingServer, pacs: SyntheticPacs) -> None:
    uids = sorted(pacs.study_uid(i) for i in range(pacs.studies))
    assert study_counts(server) == dict.fromkeys(uids, 4)
    lost = pacs._number(uids[0])
    pacs.removed.add(lost)  # type: ignore[arg-type]  # the source no longer holds the oldest one
    with api(server) as c:
        report = c.post("/api/lifecycle/purge").json()
        assert report["kept_not_at_source"] == 1 and report["purged"] >= 2, report
        assert report["held_bytes"] <= 15000
        lives = {u: life(c, u) for u in uids}
        purged = [u for u in uids if lives[u]["purged"]]
        kept = [u for u in uids if not lives[u]["purged"] and u != uids[0]]
        assert uids[0] not in purged and len(purged) == report["purged"]  # not the one the source lost
        assert max(lives[u]["received_at"] for u in purged) <= min(lives[u]["received_at"] for u in kept)  # FIFO
        assert c.post("/api/lifecycle/purge").json()["purged"] == 0  # under the high-water mark now
        # WADO-RS metadata of a purged study: fetched again from the source, answered as if never gone
        r = c.get(f"/dicomweb/studies/{purged[0]}/metadata")
        assert r.status_code == 200 and len(r.json()) == 4
        assert life(c, purged[0])["purged"] is False
        # QIDO-RS by UID, as the viewer's study list does
        r = c.get("/dicomweb/studies", params={"StudyInstanceUID": purged[1], "includefield": "00201208"})
        assert r.status_code == 200 and r.json()[0]["00201208"]["Value"] == [4]
        assert c.get(f"/api/lifecycle/refetch/{purged[1]}").json()["state"] == "done"
    pacs.removed.discard(lost)


def test_a_purged_study_the_source_lost_answers_503_with_progress(server: YunyingServer,
                                                                   pacs: SyntheticPacs) -> None:
    with api(server) as c:
        purged = [u for u in sorted(pacs.study_uid(i) for i in range(pacs.studies)) if life(c, u)["purged"]]
        assert purged, "the first test purged more than it re-fetched"
        gone = pacs._number(purged[-1])
        assert gone is not None
        pacs.removed.add(gone)
        try:
            r = c.get(f"/dicomweb/studies/{purged[-1]}/series")
            assert r.status_code == 503 and r.headers["Retry-After"], r.text
            assert "could not be fetched" in r.json()["error"] and r.json()["refetch"]["state"] == "failed"
            assert c.get("/api/jobs").json()["jobs"]  # the archive keeps serving
        finally:
            pacs.removed.discard(gone)
        r = c.get(f"/dicomweb/studies/{purged[-1]}/series")  # the source has it again: fetched now
        assert r.status_code == 200 and len(r.json()) == 2


def test_deletion_only_after_retention_and_confirmed(server: YunyingServer, pacs: SyntheticPacs) -> None:
    study = pacs.study_uid(3)
    with api(server) as c:
        info = life(c, study)
        assert info["class"] == "outpatient" and info["retain_until"] > "2040-01-01"
        r = c.post(f"/api/lifecycle/studies/{study}/delete", json={"confirm": study})
        assert r.status_code == 409 and "retention" in r.json()["error"]
        r = c.post(f"/api/lifecycle/studies/{study}/delete", json={"confirm": "1.2.3"})
        assert r.status_code == 409 and "confirm" in r.json()["error"]
        assert c.put(f"/api/lifecycle/studies/{study}/protected", json={"protected": "yes"}).status_code == 400
        assert c.put(f"/api/lifecycle/studies/{study}/protected", json={"protected": True}).json()["protected"]
        assert c.get("/api/lifecycle/studies/not-a-uid").status_code == 400
    assert study_counts(server)[study] == 4  # nothing touched


def test_an_admin_deletes_a_study_whose_retention_ended(server: YunyingServer, old: SyntheticPacs) -> None:
    study = old.study_uid(0)
    assert run(server, "old", kind="refresh", study=study)["state"] == "done"
    with api(server) as c:
        info = life(c, study)
        assert (info["class"], info["retain_until"]) == ("short", "2025-12-01")  # StudyDate 2024-12-01 + 1 year
        r = c.post(f"/api/lifecycle/studies/{study}/delete", json={"confirm": study})
        assert r.status_code == 200 and r.json()["deleted_instances"] == 4, r.text
        assert c.get(f"/dicomweb/studies/{study}/metadata").status_code == 404  # gone, not re-fetched
        assert c.get(f"/api/lifecycle/studies/{study}").status_code == 404


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/jobs"), ("GET", "/metrics"), ("GET", "/api/collect/runs"),
    ("POST", "/api/collect/sources/pacs/runs"), ("POST", "/api/lifecycle/purge"),
    ("GET", "/api/lifecycle/studies/1.2.3"), ("POST", "/api/lifecycle/studies/1.2.3/delete"),
    ("PUT", "/api/lifecycle/studies/1.2.3/protected"),
])
def test_collection_routes_refuse_without_a_token_or_the_permission(server: YunyingServer, method: str,
                                                                    path: str) -> None:
    assert httpx.request(method, server.http_url + path, json={"kind": "sync"}).status_code == 401
    reader = {"Authorization": f"Bearer {READER}"}  # dicomweb.read only
    assert httpx.request(method, server.http_url + path, json={"kind": "sync"}, headers=reader).status_code == 403


def test_refetch_progress_needs_a_token(server: YunyingServer) -> None:
    assert httpx.get(server.http_url + "/api/lifecycle/refetch/1.2.3").status_code == 401
    r = httpx.get(server.http_url + "/api/lifecycle/refetch/1.2.3", headers={"Authorization": f"Bearer {READER}"})
    assert r.status_code == 404
