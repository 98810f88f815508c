"""Routing through real peers: Orthanc (C-STORE and STOW-RS) and a pynetdicom SCP that refuses,
then stalls, then accepts: retries with backoff, a queue that survives a restart, nothing lost,
nothing we keep altered."""
from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.uid import RLELossless
from pynetdicom import AE

from benchmarks import orthanc as orthanc_mod
from benchmarks.net import YunyingServer
from tests.conftest import missing_tool, start_with_env
from tests.dicomweb.helpers import CT, make_ct
from tests.routing.peers import FlakyScp, wait_for

J2K_LOSSY = "1.2.840.10008.1.2.4.91"


def start(data: Path) -> YunyingServer:
    return start_with_env(data, YUNYING_ROUTING_BACKOFF_SECONDS="1", YUNYING_ROUTING_ATTEMPTS="3",
                          YUNYING_DIMSE_ACCEPT_ALL="true")


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    if not orthanc_mod.orthanc_available():
        missing_tool("Orthanc not installed")
    o = orthanc_mod.start_orthanc(tmp_path_factory.mktemp("orthanc"), aet="ORTHANC")
    yield o
    o.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start(tmp_path_factory.mktemp("routing") / "data")
    yield s
    s.stop()


def api(srv: YunyingServer) -> httpx.Client:
    return httpx.Client(base_url=srv.http_url + "/api/routing", headers=srv.headers, timeout=30)


def c_store(srv: YunyingServer, datasets: list[pydicom.Dataset], calling: str = "MODALITY1") -> None:
    ae = AE(ae_title=calling)
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", srv.dimse_port, ae_title=srv.aet)
    assert assoc.is_established
    try:
        for ds in datasets:
            assert assoc.send_c_store(ds).Status == 0x0000
    finally:
        assoc.release()


def queue_of(srv: YunyingServer, rule: int) -> list[dict]:
    with api(srv) as c:
        return c.get("/queue", params={"rule": rule}).json()


def all_done(srv: YunyingServer, rule: int, n: int) -> bool:
    rows = queue_of(srv, rule)
    return len(rows) == n and all(r["state"] == "done" for r in rows)


def rule(srv: YunyingServer, body: dict) -> int:
    with api(srv) as c:
        r = c.post("/rules", json=body)
        assert r.status_code == 201, r.text
        return r.json()["id"]


def stored_syntax(srv: YunyingServer, ds: pydicom.Dataset) -> str:
    url = (f"{srv.dicomweb_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}")
    r = httpx.get(url, headers={**srv.headers, "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    assert r.status_code == 200
    body = r.content
    start = body.index(b"DICM") - 128
    return str(pydicom.dcmread(io.BytesIO(body[start:])).file_meta.TransferSyntaxUID)


def test_c_store_to_orthanc_lossless_as_stored(srv: YunyingServer, orthanc) -> None:
    rid = rule(srv, {"name": "ct-to-orthanc", "match": {"source_aes": ["MODALITY1"], "modalities": ["CT"]},
                     "destination": {"kind": "dicom", "aet": "ORTHANC", "host": "127.0.0.1", "port": orthanc.dimse_port}})
    sent = [make_ct(number=i, patient_id="R1") for i in range(3)]
    rle = make_ct(number=9, patient_id="R1")
    rle.compress(RLELossless)
    c_store(srv, [*sent, rle])
    c_store(srv, [make_ct(modality="MR", patient_id="R1")])  # no rule for MR: not queued
    assert wait_for(lambda: all_done(srv, rid, 4)), queue_of(srv, rid)
    for ds in [*sent, rle]:
        found = httpx.post(orthanc.http_url + "/tools/lookup", content=ds.SOPInstanceUID).json()
        assert found, ds.SOPInstanceUID
        got = pydicom.dcmread(io.BytesIO(httpx.get(f"{orthanc.http_url}/instances/{found[0]['ID']}/file").content))
        assert got.pixel_array.tobytes() == ds.pixel_array.tobytes()
        expected = RLELossless if ds is rle else ds.file_meta.TransferSyntaxUID
        assert got.file_meta.TransferSyntaxUID == expected  # as stored: Orthanc takes RLE
    with api(srv) as c:
        jobs = c.get("/jobs").json()
    job = next(j for j in jobs if j["name"] == "ct-to-orthanc")
    assert job["kind"] == "routing" and job["counts"]["done"] == 4 and job["state"] == "idle"
    every = httpx.get(srv.http_url + "/api/jobs", headers=srv.headers).json()  # the jobs registry (part 8)
    every = every.get("jobs", every) if isinstance(every, dict) else every
    assert any(j["kind"] == "routing" and j["name"] == "ct-to-orthanc" for j in every)


def test_stow_to_orthanc_in_a_lossy_syntax_it_asked_for_keeps_ours_lossless(srv: YunyingServer, orthanc) -> None:
    rid = rule(srv, {"name": "to-orthanc-web", "match": {"source_aes": ["MODALITY2"]}, "syntax": J2K_LOSSY,
                     "destination": {"kind": "dicomweb", "url": orthanc.dicomweb_url}})
    ds = make_ct(number=4, rows=64, cols=64, patient_id="R2")
    c_store(srv, [ds], calling="MODALITY2")
    assert wait_for(lambda: all_done(srv, rid, 1)), queue_of(srv, rid)
    found = httpx.post(orthanc.http_url + "/tools/lookup", content=ds.SOPInstanceUID).json()
    got = pydicom.dcmread(io.BytesIO(httpx.get(f"{orthanc.http_url}/instances/{found[0]['ID']}/file").content))
    assert got.file_meta.TransferSyntaxUID == J2K_LOSSY
    assert got.LossyImageCompression == "01"
    assert stored_syntax(srv, ds) == ds.file_meta.TransferSyntaxUID  # what we keep is untouched


def test_a_refusing_then_stalling_destination_loses_nothing(srv: YunyingServer, flaky: FlakyScp) -> None:
    rid = rule(srv, {"name": "flaky", "match": {"modalities": ["US"]},
                     "destination": {"kind": "dicom", "aet": "FLAKY", "host": "127.0.0.1", "port": flaky.port,
                                     "timeout": 2}})
    sent = [make_ct(number=i, modality="US", patient_id="R3") for i in range(3)]
    flaky.mode = "refuse"
    c_store(srv, sent)
    # three attempts each (settings), with 1 s, 2 s backoff, then failed and kept
    assert wait_for(lambda: all(r["state"] == "failed" for r in queue_of(srv, rid)) and queue_of(srv, rid), 60)
    rows = queue_of(srv, rid)
    assert {r["attempts"] for r in rows} == {3} and {r["last_error"] for r in rows} == {"C-STORE status 0xA700"}
    flaky.mode = "stall"  # answers after our 2 s timeout
    with api(srv) as c:
        assert c.post(f"/rules/{rid}/retry").json() == {"queued": 3}
    assert wait_for(lambda: any("no valid response" in r["last_error"] for r in queue_of(srv, rid)), 30)
    flaky.mode = "accept"
    assert wait_for(lambda: all_done(srv, rid, 3), 60), queue_of(srv, rid)
    assert set(flaky.received) == {ds.SOPInstanceUID for ds in sent}


def test_the_queue_survives_a_restart(tmp_path: Path, flaky: FlakyScp) -> None:
    data = tmp_path / "data"
    first = start(data)
    try:
        with api(first) as c:
            rid = c.post("/rules", json={"name": "later", "match": {"modalities": ["DX"]}, "destination": {
                "kind": "dicom", "aet": "FLAKY", "host": "127.0.0.1", "port": flaky.port, "timeout": 2}}).json()["id"]
        flaky.mode = "refuse"
        ds = make_ct(modality="DX", patient_id="R4")
        c_store(first, [ds])
        assert wait_for(lambda: queue_of(first, rid) and queue_of(first, rid)[0]["attempts"] >= 1, 30)
    finally:
        first.stop()
    flaky.mode = "accept"
    second = start(data)
    try:
        assert wait_for(lambda: all_done(second, rid, 1), 60), queue_of(second, rid)
        assert ds.SOPInstanceUID in flaky.received
    finally:
        second.stop()


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "destination": {"kind": "ftp"}}, "destination"),
    ({"name": "x", "destination": {"kind": "dicom", "aet": "A\\B", "host": "h", "port": 104}}, "destination.aet"),
    ({"name": "x", "destination": {"kind": "dicom", "aet": "A", "host": "h", "port": 70000}}, "destination.port"),
    ({"name": "x", "destination": {"kind": "dicomweb", "url": "file:///etc"}}, "destination.url"),
    ({"name": "x", "match": {"hours": "25:00-01:00"}, "destination": {"kind": "dicomweb", "url": "http://h"}}, "match.hours"),
    ({"name": "x", "match": {"colour": []}, "destination": {"kind": "dicomweb", "url": "http://h"}}, "match"),
    ({"name": "x", "syntax": "1.2.840.10008.1.2.4.90", "destination": {"kind": "dicomweb", "url": "http://h"}}, "syntax"),
    ({"name": "x", "syntax": "9.9", "destination": {"kind": "dicomweb", "url": "http://h"}}, "syntax"),
    ({"name": "", "destination": {"kind": "dicomweb", "url": "http://h"}}, "name"),
    ({"name": "a\x00", "destination": {"kind": "dicomweb", "url": "http://h"}}, "name"),
    ({"name": "x", "destination": {"kind": "dicomweb", "url": "http://h/\x00"}}, "destination.url"),
])
def test_a_bad_rule_is_a_400_naming_the_field(srv: YunyingServer, body: dict, field: str) -> None:
    with api(srv) as c:
        before = c.get("/rules").json()
        r = c.post("/rules", json=body)
        assert r.status_code == 400 and field in r.json()["error"], r.text
        assert c.get("/rules").json() == before


def test_rules_change_and_go_and_unknown_ones_are_404(srv: YunyingServer) -> None:
    with api(srv) as c:
        r = c.post("/rules", json={"name": "temp", "destination": {"kind": "dicomweb", "url": "http://127.0.0.1:9"}})
        rid = r.json()["id"]
        assert c.post("/rules", json={"name": "temp", "destination": {"kind": "dicomweb", "url": "http://h"}}).status_code == 409
        assert c.put(f"/rules/{rid}", json={"enabled": False}).json()["enabled"] is False
        assert c.delete(f"/rules/{rid}").status_code == 200
        assert c.delete(f"/rules/{rid}").status_code == 404
        assert c.put("/rules/abc", json={}).status_code == 404
        assert c.get("/queue", params={"state": "lost"}).status_code == 400
        assert c.post("/rules/999/send", json={"study": "1.2.3"}).status_code == 404
        assert c.post("/rules/1/send", json={"study": "1.2.3.4.5.6.7"}).status_code == 404  # not stored
        assert c.post("/rules/1/send", json={"study": ""}).status_code == 400


def test_a_study_is_sent_again_by_hand(srv: YunyingServer, orthanc) -> None:
    with api(srv) as c:
        rid = next(r["id"] for r in c.get("/rules").json() if r["name"] == "ct-to-orthanc")
        study = queue_of(srv, rid)[0]["study"]
        assert c.post(f"/rules/{rid}/send", json={"study": study}).json() == {"queued": 1}  # one instance
    assert wait_for(lambda: all_done(srv, rid, 5)), queue_of(srv, rid)


def test_refusals(srv: YunyingServer) -> None:
    base = srv.http_url + "/api/routing"
    assert httpx.get(base + "/rules").status_code == 401
    assert httpx.post(base + "/retry").status_code == 401
    with httpx.Client(base_url=srv.http_url, headers=srv.headers) as c:
        reader = c.post("/api/admin/api-keys", json={"name": "routing-reader", "scopes": ["dicomweb.read"]}).json()
    headers = {"Authorization": f"Bearer {reader['key']}"}
    assert httpx.get(base + "/rules", headers=headers).status_code == 403
    assert httpx.post(base + "/rules", headers=headers, json={}).status_code == 403
    assert httpx.get(base + "/jobs", headers=headers).status_code == 403
    assert httpx.post(base + "/pause", headers=headers).status_code == 403
    assert httpx.post(base + "/queue/drop", headers=headers, json={"items": [1]}).status_code == 403
    assert httpx.get(base + "/paused").status_code == 401


def test_a_new_rule_never_inherits_a_deleted_rules_queue(srv: YunyingServer) -> None:
    with api(srv) as c:
        first = c.post("/rules", json={"name": "gone", "match": {"modalities": ["XA"]},
                                       "destination": {"kind": "dicomweb", "url": "http://127.0.0.1:9"}}).json()["id"]
        c_store(srv, [make_ct(modality="XA")])
        assert wait_for(lambda: queue_of(srv, first), 10)
        c.delete(f"/rules/{first}")
        second = c.post("/rules", json={"name": "new", "match": {"modalities": ["NM"]},
                                        "destination": {"kind": "dicomweb", "url": "http://127.0.0.1:9"}}).json()["id"]
        assert second != first and queue_of(srv, second) == []
        c.delete(f"/rules/{second}")


def test_a_paused_rule_holds_its_queue_and_matches_nothing_new(srv: YunyingServer, flaky: FlakyScp) -> None:
    import time

    rid = rule(srv, {"name": "paused", "match": {"modalities": ["PT"]}, "destination": {
        "kind": "dicom", "aet": "FLAKY", "host": "127.0.0.1", "port": flaky.port, "timeout": 2}})
    flaky.mode = "refuse"
    held = make_ct(modality="PT")
    c_store(srv, [held])
    assert wait_for(lambda: queue_of(srv, rid) and queue_of(srv, rid)[0]["attempts"] >= 1, 30)
    with api(srv) as c:
        assert c.put(f"/rules/{rid}", json={"enabled": False}).json()["enabled"] is False
        flaky.mode = "accept"
        c.post(f"/rules/{rid}/retry")
        c_store(srv, [make_ct(modality="PT")])  # while paused: not queued
        time.sleep(2)
        rows = queue_of(srv, rid)
        assert len(rows) == 1 and rows[0]["state"] in ("pending", "failed")
        assert held.SOPInstanceUID not in flaky.received
        c.post(f"/rules/{rid}/retry")
        assert c.put(f"/rules/{rid}", json={"enabled": True}).status_code == 200
    assert wait_for(lambda: all_done(srv, rid, 1), 30), queue_of(srv, rid)
    assert held.SOPInstanceUID in flaky.received


def test_stow_requests_are_bounded_in_size() -> None:
    from yunying.routing import senders
    from yunying.routing.outgoing import Outgoing

    def item(n: int, size: int) -> Outgoing:
        return Outgoing(CT, str(n), ("1.2.840.10008.1.2.1",), lambda ts: b"", size)

    big = senders.REQUEST_BYTES
    groups = senders._groups([item(1, big // 2), item(2, big // 2), item(3, 1), item(4, 2 * big), item(5, 1)])
    assert [[i.sop for i in g] for g in groups] == [["1", "2"], ["3"], ["4"], ["5"]]
