"""Storage associations served by an ingest worker lent to them (issue 9, dimse/fastrecv.py +
dimse/pdata.py): the socket goes to the worker after negotiation, the worker parses and writes,
the server decides each store. Real peers (DCMTK storescu, pynetdicom) and the raw PS3.8 peer
of test_fastrecv: the same statuses, read-your-writes, bad input refused with nothing stored."""
from __future__ import annotations

import os
import signal
import struct
import time

import pydicom
from conftest import SCU_AET, make_instance, run, start_scp, stored_dataset, stored_sops
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from test_fastrecv import CT, MR, RawPeer, _aborted, _instance, _status, _store_pdus

from dimse.fastsend import c_store_rq, message_pdus
from index.model import Origin
from yunying.archive import Archive
from yunying.workers import IngestPool


def _pool(archive: Archive) -> IngestPool:
    assert archive._pool is not None
    return archive._pool


def test_pynetdicom_store_in_a_lent_worker_reads_back_at_once(pooled_scp, pooled, tmp_path) -> None:
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(CT, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", pooled_scp.port, ae_title="YUNYING")
    assert assoc.is_established
    lent: list[int] = []
    try:
        for i in range(3):
            path, ds = _instance(tmp_path, i)
            assert assoc.send_c_store(ds).Status == 0
            lent += _pool(pooled).lent_pids()
            # acknowledged: the very next query finds it, and it reads back as sent
            assert str(ds.SOPInstanceUID) in stored_sops(pooled)
            assert stored_dataset(pooled, str(ds.SOPInstanceUID)) == pydicom.dcmread(path)
    finally:
        assoc.release()
    assert lent and os.getpid() not in lent, "the association was not served by a lent worker"


def test_storescu_in_a_lent_worker_and_the_worker_is_kept(pooled_scp, pooled, tmp_path) -> None:
    files = [_instance(tmp_path, i)[0] for i in range(4)]
    started = _pool(pooled).pids()
    for shard in (files[:2], files[2:]):
        res = run("storescu", "-aet", SCU_AET, "-aec", "YUNYING", "127.0.0.1", str(pooled_scp.port), *map(str, shard))
        assert res.returncode == 0, res.stderr
    assert {str(pydicom.dcmread(f).SOPInstanceUID) for f in files} <= stored_sops(pooled)
    pool = _pool(pooled)
    # the pool's idle worker was lent to both associations and is back in the pool: no process started
    assert pool.pids() == started and not pool.lent_pids() and pool._workers


def test_resend_and_conflict_follow_the_one_rule(pooled_scp, pooled, tmp_path) -> None:
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    first = make_instance(tmp_path / "a.dcm", study=study, series=series, sop=sop)
    elsewhere = make_instance(tmp_path / "b.dcm", study=study, series=generate_uid(), sop=sop)
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(CT, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", pooled_scp.port, ae_title="YUNYING")
    try:
        assert assoc.send_c_store(pydicom.dcmread(first)).Status == 0
        assert assoc.send_c_store(pydicom.dcmread(first)).Status == 0  # identical resend: nothing changes
        answer = assoc.send_c_store(pydicom.dcmread(elsewhere))
        assert answer.Status == 0xC409 and str(answer.ErrorComment).startswith("SOP Instance")
    finally:
        assoc.release()
    assert stored_dataset(pooled, sop).SeriesInstanceUID == series
    assert len(pooled.instances(study)) == 1


def test_bad_input_refused_and_the_association_goes_on(pooled_scp, pooled, tmp_path) -> None:
    peer = RawPeer(pooled_scp.port, [CT])
    bad_sop = generate_uid()
    peer.send(*message_pdus(1, c_store_rq(CT, bad_sop, 3), b"\x08\x00\x16\x00", 16384))  # no element
    fields = peer.response()
    assert _status(fields) == 0xC000 and fields.get(0x0902), "a failure status with its reason"
    path, ds = _instance(tmp_path)
    peer.send(*_store_pdus(ds, path, sop_class=MR))  # MR named on the CT context
    assert _status(peer.response()) == 0x0122
    path2, ds2 = _instance(tmp_path, 1)
    peer.send(*_store_pdus(ds2, path2))
    assert _status(peer.response()) == 0
    assert peer.release() == 0x06  # A-RELEASE-RP: the server's pynetdicom answers it again
    assert stored_sops(pooled) == {str(ds2.SOPInstanceUID)}
    objects = pooled.data_dir / "store" / "objects"
    assert not any(ds.SOPInstanceUID in p.name or bad_sop in p.name for p in objects.rglob("*"))


def test_malformed_pdata_in_a_lent_worker_aborts_and_stores_nothing(pooled_scp, pooled, tmp_path) -> None:
    peer = RawPeer(pooled_scp.port, [CT])
    path, ds = _instance(tmp_path)
    pdus = _store_pdus(ds, path, max_pdu=4096)
    peer.send(*pdus[:3], struct.pack(">BBIIBB", 4, 0, 12, 400, 1, 3) + bytes(6))  # an item overrunning its PDU
    assert _aborted(peer)
    peer.close()
    path2, ds2 = _instance(tmp_path, 2)
    res = run("storescu", "-aet", SCU_AET, "-aec", "YUNYING", "127.0.0.1", str(pooled_scp.port), str(path2))
    assert res.returncode == 0, res.stderr
    assert stored_sops(pooled) == {str(ds2.SOPInstanceUID)}


def test_cut_off_mid_instance_in_a_lent_worker_stores_nothing(pooled_scp, pooled, tmp_path) -> None:
    peer = RawPeer(pooled_scp.port, [CT], max_pdu=4096)
    path, ds = _instance(tmp_path)
    pdus = _store_pdus(ds, path, max_pdu=4096)
    peer.send(*pdus[:len(pdus) // 2])
    peer.close()
    res = run("echoscu", "-aet", SCU_AET, "-aec", "YUNYING", "127.0.0.1", str(pooled_scp.port))
    assert res.returncode == 0, res.stderr
    assert not stored_sops(pooled)
    assert not [p for p in (pooled.data_dir / "store" / "objects").rglob("*") if p.is_file()]


def test_a_write_while_the_pool_worker_is_lent_gets_another(pooled_scp, pooled, tmp_path) -> None:
    """The pool's only worker lent to a long association: a STOW-like write starts another
    instead of waiting for the association to end."""
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(CT, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", pooled_scp.port, ae_title="YUNYING")
    try:
        _path, ds = _instance(tmp_path)
        assert assoc.send_c_store(ds).Status == 0
        assert _pool(pooled).lent_pids()
        other = make_instance(tmp_path / "w.dcm", study=generate_uid(), series=generate_uid(), sop=generate_uid())
        written = _pool(pooled).write(other.read_bytes(), pooled_origin())
        assert written.sop == str(pydicom.dcmread(other).SOPInstanceUID)
        assert len(_pool(pooled).pids()) == 2  # the lent one and the one write() started
    finally:
        assoc.release()


def pooled_origin() -> Origin:
    return Origin("dicomweb", "test")


def test_a_lent_worker_killed_aborts_its_association_and_loses_nothing(pooled_scp, pooled, tmp_path) -> None:
    files = [_instance(tmp_path, i)[0] for i in range(6)]
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(CT, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", pooled_scp.port, ae_title="YUNYING")
    for path in files[:3]:
        assert assoc.send_c_store(pydicom.dcmread(path)).Status == 0
    (pid,) = _pool(pooled).lent_pids()
    os.kill(pid, signal.SIGKILL)
    answer = assoc.send_c_store(pydicom.dcmread(files[3]))
    # no status: A-ABORT, or the connection closed right after it (either way nothing acknowledged)
    assert "Status" not in answer, "a store the dead worker was reading got a status"
    assoc.join(10)  # pynetdicom's own threads notice the end a moment later
    assert not assoc.is_established, "the association of a dead worker ends"
    again = ae.associate("127.0.0.1", pooled_scp.port, ae_title="YUNYING")  # the sender resends: a new worker
    try:
        for path in files[3:]:
            assert again.send_c_store(pydicom.dcmread(path)).Status == 0
        assert pid not in _pool(pooled).pids()
    finally:
        again.release()
    for path in files:
        sent = pydicom.dcmread(path)
        assert stored_dataset(pooled, str(sent.SOPInstanceUID)) == sent


def test_server_stop_ends_an_association_served_by_a_lent_worker(pooled, storescp_port, tmp_path) -> None:
    server = start_scp(pooled, storescp_port, dimse_lend_workers=True)
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(CT, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="YUNYING")
    _path, ds = _instance(tmp_path)
    assert assoc.send_c_store(ds).Status == 0
    assert _pool(pooled).lent_pids()
    started = time.monotonic()
    server.stop()  # the association is ended under the worker's loop
    assert time.monotonic() - started < 10
    assoc.join(10)
    assert not assoc.is_established and not _pool(pooled).lent_pids()
    assert str(ds.SOPInstanceUID) in stored_sops(pooled)
    # whichever worker the pool keeps answers its next write in step (no answer left in its pipe)
    other = make_instance(tmp_path / "w.dcm", study=generate_uid(), series=generate_uid(), sop=generate_uid())
    assert _pool(pooled).write(other.read_bytes(), pooled_origin()).sop == str(pydicom.dcmread(other).SOPInstanceUID)


def test_lending_off_by_default_serves_in_the_association_thread(pooled, storescp_port, tmp_path) -> None:
    server = start_scp(pooled, storescp_port)
    try:
        ae = AE(ae_title=SCU_AET)
        ae.add_requested_context(CT, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", server.port, ae_title="YUNYING")
        _path, ds = _instance(tmp_path)
        assert assoc.send_c_store(ds).Status == 0
        assert not _pool(pooled).lent_pids()
        assoc.release()
    finally:
        server.stop()
    assert str(ds.SOPInstanceUID) in stored_sops(pooled)
