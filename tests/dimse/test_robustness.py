"""Bad input, broken connections, load: the SCP refuses clearly and keeps serving."""
from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import threading
import time
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from conftest import DCMTK, SCP_AET, SCU_AET, make_instance, sample_file, start_scp, stored_sops
from fake_archive import FakeArchive
from pydicom import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # pynetdicom makes its SOP classes at import time
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from dimse import scu, uids
from dimse.cli import build_identifier
from dimse.syntaxes import NATIVE
from index.model import Origin

PEER = {"called": SCP_AET, "aet": SCU_AET, "timeout": 30}


def ct(sop: str, study: str = "1.2.7.1", series: str = "1.2.7.1.1") -> Dataset:
    """CT_small under new UIDs."""
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop)
    return ds


def store_contexts() -> list:
    return [build_context(CTImageStorage, NATIVE), build_context(Verification)]


def send_raw_store(assoc, body: bytes, sop: str, msg_id: int) -> Dataset:
    """C-STORE with a data set given as bytes (pynetdicom would only send well-formed ones)."""
    cx = next(c for c in assoc.accepted_contexts
              if c.abstract_syntax == CTImageStorage and c.transfer_syntax[0] == ExplicitVRLittleEndian)
    req = C_STORE()
    req.MessageID, req.Priority = msg_id, 2
    req.AffectedSOPClassUID, req.AffectedSOPInstanceUID = CTImageStorage, sop
    req.DataSet = BytesIO(body)
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.001)
    try:
        assoc.dimse.send_msg(req, cx.context_id)
        _, rsp = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    return rsp


def _encoded(ds: Dataset) -> bytes:
    """A data set encoded Explicit VR Little Endian, as a C-STORE carries it."""
    raw = encode(ds, False, True)
    assert raw is not None
    return raw


def test_malformed_datasets_fail_and_association_survives(scp, archive) -> None:
    good = _encoded(ct("1.2.7.1.1.1"))
    no_study = ct("1.2.7.1.1.2")
    del no_study.StudyInstanceUID
    bodies = {
        "truncated mid-element": good[: len(good) // 2],
        "garbage": b"\x08\x00\x16\x00UI\xff\x7f" + bytes(range(200)),
        "no StudyInstanceUID": _encoded(no_study),
        "garbage inside a sequence": _garbage_sequence(_encoded(ct("1.2.7.1.1.4"))),
    }
    with scu.associate(scu.Peer("127.0.0.1", scp.port, **PEER), store_contexts()) as assoc:
        for n, (what, body) in enumerate(bodies.items(), start=1):
            rsp = send_raw_store(assoc, body, f"1.2.7.1.1.{n}", n)
            assert rsp.Status >> 12 in (0xA, 0xC), (what, hex(rsp.Status))
            assert rsp.ErrorComment, what
        assert assoc.send_c_store(ct("1.2.7.1.1.9")).Status == 0x0000
        assert assoc.send_c_echo().Status == 0x0000
    assert stored_sops(archive) == {"1.2.7.1.1.9"}


def _garbage_sequence(body: bytes) -> bytes:
    """A defined-length (0040,0275) SQ whose value is not items (PS3.5 7.5), inserted before PixelData."""
    at = body.find(b"\xe0\x7f\x10\x00")
    value = b"\x01\x02\x03\x04garbage!garb"
    return body[:at] + b"\x40\x00\x75\x02SQ\0\0" + len(value).to_bytes(4, "little") + value + body[at:]


def test_unexpected_error_is_0x0110_without_patient_data(fake_scp, fake_archive, caplog) -> None:
    """Issue 10 part 2: a failure of ours is a processing failure (0x0110), not "cannot understand"."""
    def explode(*_a, **_k):
        raise RuntimeError("PatientName Doe^John broke it")

    fake_archive.store = explode
    caplog.set_level(logging.DEBUG)
    with scu.associate(scu.Peer("127.0.0.1", fake_scp.port, **PEER), store_contexts()) as assoc:
        assert assoc.send_c_store(ct("1.2.7.1.1.4")).Status == 0x0110
        assert assoc.send_c_echo().Status == 0x0000
    assert "Doe" not in caplog.text and "RuntimeError" in caplog.text


def test_queries_are_not_logged(scp, archive, caplog) -> None:
    archive.store(_part10(ct("1.2.7.1.1.5")), _origin())
    caplog.set_level(logging.DEBUG)
    ident = build_identifier("STUDY", ["PatientName=CompressedSamples*", "PatientID", "StudyInstanceUID"])
    assert len(list(scu.find(scu.Peer("127.0.0.1", scp.port, **PEER), ident))) == 1
    assert "CompressedSamples" not in caplog.text and "CT1" not in caplog.text
    assert "association" in caplog.text  # ... but the association is


def _part10(ds: Dataset) -> bytes:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _origin() -> Origin:
    return Origin("import", "test")


def test_abrupt_disconnect_mid_transfer_stores_nothing(scp, archive) -> None:
    big = ct("1.2.7.1.1.6")
    big.Rows, big.Columns = 2048, 2048
    big.PixelData = b"\x01\x00" * (2048 * 2048)  # 8 MB: many PDUs
    sent = {"n": 0}

    def cut(event) -> None:  # after a few P-DATA PDUs, drop the TCP connection
        sent["n"] += 1
        if sent["n"] == 3:
            event.assoc.dul.socket.socket.shutdown(socket.SHUT_RDWR)

    ae = AE(ae_title=SCU_AET)
    ae.requested_contexts = store_contexts()
    ae.dimse_timeout = ae.network_timeout = 5
    assoc = ae.associate("127.0.0.1", scp.port, ae_title=SCP_AET, max_pdu=4096,
                         evt_handlers=[(evt.EVT_PDU_SENT, cut)])
    assert assoc.is_established
    with contextlib.suppress(Exception):  # the cut makes the send fail one way or another
        assoc.send_c_store(big)
    assoc.abort()
    time.sleep(0.5)
    assert stored_sops(archive) == set()
    assert scu.echo(scu.Peer("127.0.0.1", scp.port, **PEER)) == 0
    with scu.associate(scu.Peer("127.0.0.1", scp.port, **PEER), store_contexts()) as again:
        assert again.send_c_store(ct("1.2.7.1.1.7")).Status == 0
    assert stored_sops(archive) == {"1.2.7.1.1.7"}


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x01\x00\xff\xff\xff\xff" + b"\x00" * 64,  # A-ASSOCIATE-RQ claiming 4 GB, then nothing
    b"\x04\x00\x00\x00\x00\x10" + b"\xaa" * 16,  # P-DATA before any association
    bytes(range(256)) * 8,
])
def test_garbage_on_the_port_does_not_hurt(scp, garbage: bytes) -> None:
    with socket.create_connection(("127.0.0.1", scp.port), timeout=5) as s:
        s.sendall(garbage)
        s.settimeout(2)
        try:
            s.recv(1024)
        except (TimeoutError, ConnectionError, OSError):
            pass
    assert scu.echo(scu.Peer("127.0.0.1", scp.port, **PEER)) == 0


def test_eight_concurrent_storescu_store_everything(scp, archive, tmp_path: Path) -> None:
    procs = []
    for n in range(8):
        folder = tmp_path / f"batch{n}"
        folder.mkdir()
        for i in range(12):
            make_instance(folder / f"{i}.dcm", study=f"1.2.8.{n}", series=f"1.2.8.{n}.1", sop=f"1.2.8.{n}.1.{i}")
        procs.append(subprocess.Popen(
            [str(DCMTK / "storescu"), "+sd", "-aet", SCU_AET, "-aec", SCP_AET, "127.0.0.1", str(scp.port),
             str(folder)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={"TCP_NODELAY": "1"}))
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out
    assert len(stored_sops(archive)) == 96


def test_c_find_cancel_stops_the_stream(fake_scp, fake_archive) -> None:
    for i in range(40):
        fake_archive.store(_part10(ct(f"1.2.9.{i}.1.1", study=f"1.2.9.{i}", series=f"1.2.9.{i}.1")), _origin())
    real_search = fake_archive.search

    def slow_search(query):
        for item in real_search(query):
            time.sleep(0.02)
            yield item

    fake_archive.search = slow_search
    model = StudyRootQueryRetrieveInformationModelFind
    with scu.associate(scu.Peer("127.0.0.1", fake_scp.port, **PEER), [build_context(model, NATIVE)]) as assoc:
        statuses = []
        for rsp, _ in assoc.send_c_find(build_identifier("STUDY", ["StudyInstanceUID"]), model, msg_id=7):
            statuses.append(int(rsp.Status))
            if len(statuses) == 3:
                assoc.send_c_cancel(7, query_model=model)
        assert statuses[-1] == 0xFE00 and len(statuses) < 40


def test_c_move_cancel_stops_sub_operations(fake_scp, fake_archive, storescp_port: int) -> None:
    for i in range(30):
        fake_archive.store(_part10(ct(f"1.2.10.1.1.{i}", study="1.2.10", series="1.2.10.1")), _origin())
    real_read = fake_archive.read_part10

    def slow_read(row, transfer_syntax=None):
        time.sleep(0.05)
        return real_read(row, transfer_syntax)

    fake_archive.read_part10 = slow_read
    dest_archive = FakeArchive()
    dest = start_scp(dest_archive, 1, port=storescp_port, aet="STORESCP", dimse_accept_all=True)
    model = uids.STUDY_ROOT_MOVE
    try:
        with scu.associate(scu.Peer("127.0.0.1", fake_scp.port, **PEER), [build_context(model, NATIVE)]) as assoc:
            last = None
            for n, (rsp, _) in enumerate(assoc.send_c_move(
                    build_identifier("STUDY", ["StudyInstanceUID=1.2.10"]), "STORESCP", model, msg_id=9)):
                last = rsp
                if n == 2:
                    assoc.send_c_cancel(9, query_model=model)
            assert last is not None and last.Status == 0xFE00
            assert 0 < last.NumberOfCompletedSuboperations < 30
            assert last.NumberOfRemainingSuboperations > 0
    finally:
        dest.stop()
    assert 0 < len(dest_archive.items) < 30


def test_stop_lets_a_running_store_finish(fake_archive, storescp_port: int) -> None:
    server = start_scp(fake_archive, storescp_port)
    real_store = fake_archive.store
    entered = threading.Event()

    def slow_store(source, origin, expected_study=None, wait=True):
        entered.set()
        time.sleep(0.5)
        return real_store(source, origin, expected_study)

    fake_archive.store = slow_store
    ae = AE(ae_title=SCU_AET)
    ae.requested_contexts = store_contexts()
    assoc = ae.associate("127.0.0.1", server.port, ae_title=SCP_AET)
    def send() -> None:
        with contextlib.suppress(Exception):  # the association is aborted under it
            assoc.send_c_store(ct("1.2.11.1"))

    sender = threading.Thread(target=send)
    sender.start()
    assert entered.wait(5)
    server.stop()  # returns only once the handler is done: the archive may be closed now
    assert "1.2.11.1" in fake_archive.items
    sender.join(10)
    assoc.abort()
