"""The audit trail through real servers and clients (issue 12 parts 1-2): one record per access
in a scripted session (QIDO, metadata, frames, C-FIND, C-MOVE, C-STORE, refusals), folded frames,
the chain caught when a row is edited, removed, reordered or cut off, and kill -9."""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # pynetdicom makes its SOP classes at import time
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

from benchmarks.net import REPO_ROOT, free_port, start_yunying
from tests.dicomweb.helpers import make_ct, multipart, part10

PATIENT, ACCESSION = "P-AUDIT-7", "ACC-77"


def records(data: Path) -> list[dict]:
    con = sqlite3.connect(f"file:{data / 'app.sqlite'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM audit_records ORDER BY seq")]
    finally:
        con.close()


def cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "yunying.cli", "audit", *args, "--data", str(data)],
                          check=False, capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A scripted session against a real server, which is then stopped; yields what was done."""
    tmp = tmp_path_factory.mktemp("audit")
    received: list[str] = []
    scp = AE(ae_title="AUDITSCU")
    scp.add_supported_context(CTImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    port = free_port()

    def on_store(event: evt.Event) -> int:
        assert isinstance(event.request, C_STORE)
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0
    server_scp = scp.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert server_scp is not None  # block=False: the server thread
    srv = start_yunying(tmp / "data", peers={"AUDITSCU": ("127.0.0.1", port)})
    try:
        ct = make_ct(patient_id=PATIENT, accession=ACCESSION, frames=3)
        study, series, sop = ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID
        body, ctype = multipart(part10(ct))
        with httpx.Client(base_url=srv.dicomweb_url, headers=srv.headers, timeout=30) as c:
            assert c.post("/studies", content=body, headers={"Content-Type": ctype}).status_code == 200
            assert c.get("/studies", params={"PatientID": PATIENT}).status_code == 200
            assert c.get(f"/studies/{study}/metadata").status_code == 200
            for f in (1, 2, 3, 1):
                r = c.get(f"/studies/{study}/series/{series}/instances/{sop}/frames/{f}",
                          headers={"Accept": "multipart/related; type=application/octet-stream"})
                assert r.status_code == 200
            assert c.get("/studies/1.2.3.404/metadata").status_code == 404
            assert c.get("/wado", params={"requestType": "WADO", "studyUID": study, "seriesUID": series,
                                          "objectUID": sop, "contentType": "application/dicom"}).status_code == 200
        assert httpx.get(srv.dicomweb_url + "/studies").status_code == 401
        scu = AE(ae_title="AUDITSCU")
        scu.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        scu.add_requested_context(CTImageStorage)
        assoc = scu.associate("127.0.0.1", srv.dimse_port, ae_title=srv.aet)
        assert assoc.is_established
        q = Dataset()
        q.QueryRetrieveLevel, q.PatientID, q.StudyInstanceUID = "STUDY", PATIENT, ""
        found = [s for s, _ in assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind)]
        assert found[-1].Status == 0
        m = Dataset()
        m.QueryRetrieveLevel, m.StudyInstanceUID = "STUDY", study
        moved = [s for s, _ in assoc.send_c_move(m, "AUDITSCU", StudyRootQueryRetrieveInformationModelMove)]
        assert moved[-1].Status == 0 and received == [sop]
        other = make_ct(study=study, patient_id=PATIENT, accession=ACCESSION)
        other.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        assert assoc.send_c_store(other).Status == 0
        assoc.release()
    finally:
        srv.stop()
        server_scp.shutdown()
    yield {"data": srv.data_dir, "study": study, "series": series, "sop": sop, "other_series": other.SeriesInstanceUID}


def test_one_record_per_access_with_the_patient(session: dict) -> None:
    rows = [r for r in records(session["data"]) if r["principal_id"] != "anonymous" or r["status"] != "401"]
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["action"], []).append(r)
    study = session["study"]
    store = [r for r in by["store"] if r["face"] == "http"]
    assert len(store) == 1 and store[0]["studies"] == study and store[0]["patient_id"] == PATIENT
    query = [r for r in by["query"] if r["face"] == "http" and r["outcome"] == "success"]
    assert len(query) == 1 and query[0]["patient_id"] == PATIENT
    (meta,) = [r for r in by["metadata"] if r["status"] == "200"]
    assert (meta["patient_id"], meta["accession"], meta["studies"]) == (PATIENT, ACCESSION, study)
    assert meta["principal_kind"] == "system" and meta["client"] == "127.0.0.1" and meta["request_id"]
    frames = by["frames"]
    assert sum(r["count"] for r in frames) == 4 and len(frames) <= 2  # folded, nothing lost
    assert all(r["series"] == session["series"] and r["patient_id"] == PATIENT for r in frames)
    (unknown,) = [r for r in by["metadata"] if r["status"] == "404"]
    assert unknown["outcome"] == "refused" and unknown["studies"] == "1.2.3.404"
    assert any(r["status"] == "401" and r["outcome"] == "refused" for r in records(session["data"]))
    (find,) = [r for r in by["query"] if r["face"] == "dimse"]
    assert (find["client"], find["patient_id"], find["status"]) == ("AUDITSCU@127.0.0.1", PATIENT, "0x0000")
    (move,) = [r for r in by["retrieve"] if r["face"] == "dimse"]
    assert (move["studies"], move["count"], move["patient_id"]) == (study, 1, PATIENT)
    assert "AUDITSCU" in move["detail"]
    (uri,) = [r for r in by["retrieve"] if r["face"] == "http"]  # WADO-URI: the UIDs from the query
    assert (uri["studies"], uri["series"], uri["patient_id"]) == (study, session["series"], PATIENT)
    (cstore,) = [r for r in by["store"] if r["face"] == "dimse"]
    assert (cstore["series"], cstore["patient_id"], cstore["principal_kind"]) == \
        (session["other_series"], PATIENT, "peer")


def test_verify_passes_on_an_untouched_trail(session: dict) -> None:
    out = cli(session["data"], "verify")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "intact" in out.stdout


def _copy(session: dict, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("app.sqlite", "app.sqlite-wal", "app.sqlite-shm"):
        if (session["data"] / name).exists():
            shutil.copy(session["data"] / name, data / name)
    shutil.copytree(session["data"] / "keys", data / "keys")
    return data


@pytest.mark.parametrize("edit, says", [
    ("UPDATE audit_records SET patient_id = 'SOMEONE-ELSE' WHERE seq = 3", "record 3: altered"),
    ("DELETE FROM audit_records WHERE seq = 4", "records 4..4 are missing"),
    (("UPDATE audit_records SET seq = CASE seq WHEN 3 THEN 1000003 WHEN 5 THEN 3 END WHERE seq IN (3, 5);"
      "UPDATE audit_records SET seq = 5 WHERE seq = 1000003"), "record 3: chain broken"),
    ("DELETE FROM audit_records WHERE seq = (SELECT MAX(seq) FROM audit_records)", "records at the end were removed"),
    ("UPDATE audit_records SET at_ms = at_ms - 86400000 WHERE seq = 2", "record 2: altered"),
])
def test_verify_finds_a_hand_edited_trail(session: dict, tmp_path: Path, edit: str, says: str) -> None:
    data = _copy(session, tmp_path)
    con = sqlite3.connect(data / "app.sqlite")
    con.executescript(edit)
    con.commit()
    con.close()
    out = cli(data, "verify")
    assert out.returncode == 1 and says in out.stdout, out.stdout + out.stderr


def test_an_acknowledged_request_survives_kill_9(tmp_path: Path) -> None:
    srv = start_yunying(tmp_path / "data")
    ids = [f"kill9-{i}" for i in range(20)]
    try:
        with httpx.Client(base_url=srv.dicomweb_url, headers=srv.headers, timeout=30) as c:
            for rid in ids:
                assert c.get("/studies/1.2.9/metadata", headers={"X-Request-ID": rid}).status_code == 404
        os.kill(srv.pid, signal.SIGKILL)
        srv.proc.wait(10)
    finally:
        if srv.proc.poll() is None:
            srv.stop()
    # what the killed process had journaled but not committed is committed by the next start
    start_yunying(tmp_path / "data").stop()
    seen = [r["request_id"] for r in records(tmp_path / "data")]
    assert all(seen.count(i) == 1 for i in ids)  # each once: none lost, none replayed twice
    assert cli(tmp_path / "data", "verify").returncode == 0
