"""C-STOREs of one series on one association fold into one audit record and a count (a store
counted into an open record builds nothing); a refused instance gets a record of its own."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]  # made at import time

from benchmarks.net import start_yunying
from tests.dicomweb.helpers import make_ct

PATIENT = "P-FOLD-3"


def _records(data: Path) -> list[dict]:
    con = sqlite3.connect(f"file:{data / 'app.sqlite'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM audit_records WHERE action = 'store' ORDER BY seq")]
    finally:
        con.close()


def test_series_fold_with_counts_and_refusal_apart(tmp_path: Path) -> None:
    srv = start_yunying(tmp_path / "data", peers={"FOLDSCU": ("127.0.0.1", 1)})
    try:
        first = make_ct(patient_id=PATIENT)
        study, series = first.StudyInstanceUID, first.SeriesInstanceUID
        same = [first] + [make_ct(study, series, patient_id=PATIENT, number=i) for i in (2, 3)]
        other = make_ct(study, patient_id=PATIENT, number=4)
        scu = AE(ae_title="FOLDSCU")
        scu.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        assoc = scu.associate("127.0.0.1", srv.dimse_port, ae_title=srv.aet)
        assert assoc.is_established
        try:
            for ds in [*same, other]:
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                assert assoc.send_c_store(ds).Status == 0
            # the same SOP Instance UID under another study: refused, nothing stored
            clash = make_ct(patient_id=PATIENT, sop=first.SOPInstanceUID)
            clash.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            status = assoc.send_c_store(clash)
            assert status.Status != 0 and (status.Status & 0xF000) in (0xA000, 0xC000)
        finally:
            assoc.release()
    finally:
        srv.stop()  # open fold windows are written at close
    rows = [r for r in _records(tmp_path / "data") if r["face"] == "dimse"]
    ok = [r for r in rows if r["outcome"] == "success"]
    by_series: dict[str, list[dict]] = {}
    for r in ok:
        by_series.setdefault(r["series"], []).append(r)
    assert set(by_series) == {series, other.SeriesInstanceUID}
    # the first store's record, then the count of the rest when the window closes: nothing lost
    assert sum(r["count"] for r in by_series[series]) == 3 and len(by_series[series]) == 2
    assert [r["count"] for r in by_series[other.SeriesInstanceUID]] == [1]
    assert all(r["patient_id"] == PATIENT and r["studies"] == study and r["client"].startswith("FOLDSCU@")
               for r in ok)
    (refused,) = [r for r in rows if r["outcome"] != "success"]
    assert first.SOPInstanceUID in refused["detail"] and refused["status"] != "0x0000"
