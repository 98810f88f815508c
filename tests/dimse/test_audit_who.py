"""The who and keys of DIMSE query records (dimse/audit_hooks.py): who is worked out once per
association, keys per query. Two C-FINDs on one association and one on another association
of another hospital's peer, through a real server and pynetdicom: each record names its own
peer, hospital, client and patient keys."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]

from benchmarks import net
from benchmarks.net import free_port


def _queries(data: Path) -> list[dict]:
    con = sqlite3.connect(f"file:{data / 'app.sqlite'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(
            "SELECT * FROM audit_records WHERE action = 'query' AND face = 'dimse' ORDER BY seq")]
    finally:
        con.close()


def _find(assoc: object, patient_id: str, level: str = "STUDY", studies: list[str] | None = None) -> None:
    q = Dataset()
    q.QueryRetrieveLevel, q.PatientID, q.StudyInstanceUID = level, patient_id, studies or ""
    found = [s for s, _ in assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind)]  # type: ignore[attr-defined]
    assert found[-1].Status == 0


def test_two_queries_on_one_association_and_one_on_another(tmp_path: Path) -> None:
    peers = {"H1SCU": {"host": "127.0.0.1", "port": free_port(), "hospital": "h1"},
             "H2SCU": {"host": "127.0.0.1", "port": free_port(), "hospital": "h2"}}
    (tmp_path / "peers.json").write_text(json.dumps(peers))
    srv = net.start_yunying(tmp_path / "data", peers=tmp_path / "peers.json")
    try:
        for aet, queries in (("H1SCU", [("P-ONE", "STUDY"), ("P-TW*", "STUDY")]), ("H2SCU", [("P-THREE", "STUDY"), ("P-FOUR", "STUDY")])):
            scu = AE(ae_title=aet)
            scu.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
            assoc = scu.associate("127.0.0.1", srv.dimse_port, ae_title=srv.aet)
            assert assoc.is_established
            try:
                for patient_id, level in queries:  # P-FOUR names two studies (a list of UIDs)
                    _find(assoc, patient_id, level, ["1.2.3", "1.5"] if patient_id == "P-FOUR" else None)
            finally:
                assoc.release()
    finally:
        srv.stop()
    rows = _queries(tmp_path / "data")
    got = [(r["principal_kind"], r["principal_id"], r["hospital"], r["client"], r["patient_id"],
            json.loads(r["detail"] or "{}")) for r in rows]
    assert got == [
        ("peer", "H1SCU", "h1", "H1SCU@127.0.0.1", "P-ONE", {"level": "STUDY"}),
        ("peer", "H1SCU", "h1", "H1SCU@127.0.0.1", "", {"level": "STUDY", "patient_pattern": "P-TW*"}),
        ("peer", "H2SCU", "h2", "H2SCU@127.0.0.1", "P-THREE", {"level": "STUDY"}),
        ("peer", "H2SCU", "h2", "H2SCU@127.0.0.1", "P-FOUR", {"level": "STUDY"}),
    ]
    assert all(r["outcome"] == "success" and r["status"] == "0x0000" for r in rows)
    assert [r["studies"] for r in rows] == ["", "", "", "1.2.3 1.5"]  # the UIDs, not a list's repr
