"""C-MOVE / C-GET where our sending thread reads the C-STORE responses itself (SocketOwner):
no response taken by another thread, no hang when a peer is slow, stops reading, or aborts."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO

import pydicom
import pytest
from conftest import SCP_AET, SCU_AET, collector, sample_file, start_scp
from fake_archive import FakeArchive
from pynetdicom import AE, evt
from pynetdicom.presentation import StoragePresentationContexts, build_context, build_role

from dimse import associations, scu, uids
from dimse.cli import build_identifier
from dimse.syntaxes import NATIVE
from index.model import Origin

CT = "1.2.840.10008.5.1.4.1.1.2"


def _fill(archive: FakeArchive, n: int, study: str = "1.2.11") -> None:
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    for i in range(n):
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, f"{study}.1"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(f"{study}.1.{i}")
        buf = BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        archive.store(buf.getvalue(), Origin("import", "test"))


@contextmanager
def _destination(port: int, on_established=None) -> Iterator[FakeArchive]:
    """A pynetdicom Storage SCP (our own server over a FakeArchive) as the C-MOVE destination."""
    dest_archive = FakeArchive()
    dest = start_scp(dest_archive, 1, port=port, aet="STORESCP", dimse_accept_all=True)
    if on_established is not None:
        dest.server.bind(evt.EVT_ESTABLISHED, on_established)
    try:
        yield dest_archive
    finally:
        dest.stop()


def _get_contexts() -> tuple[list, list]:
    contexts = [build_context(uids.STUDY_ROOT_GET, NATIVE), build_context(uids.STUDY_ROOT_MOVE, NATIVE),
                build_context(CT, NATIVE)]
    return contexts, [build_role(CT, scp_role=True)]


def _peer(port: int, timeout: float = 20) -> scu.Peer:
    return scu.Peer("127.0.0.1", port, called=SCP_AET, aet=SCU_AET, timeout=timeout)


@pytest.mark.parametrize("operation", ["move", "get"])
def test_first_response_goes_to_the_sending_thread_even_when_the_dul_was_already_waiting(
        fake_scp, fake_archive, storescp_port: int, monkeypatch, operation: str) -> None:
    """Regression: the DUL's read guard was installed when a socket was first owned, while
    the DUL thread could already be waiting in pynetdicom's own unguarded read; under load it
    then read the first C-STORE response itself and the C-MOVE requester saw nothing until
    its DIMSE timeout.  Every DUL here waits up to 0.25 s per select(), so each one is inside
    that read when ownership is taken: the guard must have been there from the start."""
    monkeypatch.setattr(associations, "IDLE_WAIT_S", 0.25)
    fake_scp.ae.dimse_timeout = 10  # a lost response fails the test in seconds, not minutes
    _fill(fake_archive, 4)
    ident = build_identifier("STUDY", ["StudyInstanceUID=1.2.11"])
    if operation == "move":
        with _destination(storescp_port) as dest_archive:
            result = scu.move(_peer(fake_scp.port), ident, "STORESCP")
        assert len(dest_archive.items) == 4
    else:
        got: list[bytes] = []
        result = scu.get(_peer(fake_scp.port), ident, collector(got),
                         sop_classes=[CT])
        assert len(got) == 4
    assert (result.status, result.completed, result.failed) == (0x0000, 4, 0)


@contextmanager
def _cpu_load(processes: int = 2) -> Iterator[None]:
    """Busy processes on every core while the block runs (the CI machine is loaded)."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for p in burners:
            p.kill()
            p.wait()


def test_many_moves_and_gets_on_one_association_under_load(fake_scp, fake_archive, storescp_port: int) -> None:
    """Every C-MOVE and C-GET on one association, with the CPU busy, gets its responses."""
    fake_scp.ae.dimse_timeout = 10
    _fill(fake_archive, 3)
    ident = build_identifier("STUDY", ["StudyInstanceUID=1.2.11"])
    contexts, roles = _get_contexts()
    stored: list[int] = []

    def on_store(event) -> int:
        stored.append(1)
        return 0x0000

    rounds = 20
    with _destination(storescp_port) as dest_archive, _cpu_load(), \
            scu.associate(_peer(fake_scp.port), contexts, ext_neg=roles,
                          handlers=[(evt.EVT_C_STORE, on_store)]) as assoc:
        for i in range(rounds):
            moved = [rsp for rsp, _ in assoc.send_c_move(ident, "STORESCP", uids.STUDY_ROOT_MOVE,
                                                         msg_id=2 * i + 1)]
            assert moved[-1].get("Status") == 0x0000, (i, moved)
            assert moved[-1].NumberOfCompletedSuboperations == 3
            got = [rsp for rsp, _ in assoc.send_c_get(ident, uids.STUDY_ROOT_GET, msg_id=2 * i + 2)]
            assert got[-1].get("Status") == 0x0000, (i, got)
            assert got[-1].NumberOfCompletedSuboperations == 3
    assert len(stored) == 3 * rounds
    assert dest_archive.stores == 3 * rounds


def test_move_to_a_destination_that_never_answers_ends(fake_scp, fake_archive, storescp_port: int) -> None:
    """A destination that accepts the association and then reads nothing: the sub-operation
    fails at our DIMSE timeout, the rest with it, and the requester gets its final response."""
    fake_scp.ae.dimse_timeout = 1
    _fill(fake_archive, 3)

    def deaf(event) -> None:  # the destination's DUL reads nothing more while associated
        dul = event.assoc.dul
        hearing = dul._is_transport_event
        dul._is_transport_event = lambda: dul.state_machine.current_state != "Sta6" and hearing()

    # a plain pynetdicom SCP: ours reads storage associations itself (dimse/fastrecv.py), past the DUL
    dest = AE(ae_title="STORESCP")
    dest.supported_contexts = StoragePresentationContexts
    server = dest.start_server(("127.0.0.1", storescp_port), block=False, evt_handlers=[(evt.EVT_ESTABLISHED, deaf)])
    assert server is not None
    try:
        result = scu.move(_peer(fake_scp.port), build_identifier("STUDY", ["StudyInstanceUID=1.2.11"]),
                          "STORESCP")
    finally:
        server.shutdown()
    assert result.status == 0xA702 and result.failed == 3 and result.completed == 0


def test_get_requester_that_never_answers_is_aborted(fake_scp, fake_archive) -> None:
    """A C-GET requester that sends no C-STORE response in time: we abort its association at
    our DIMSE timeout instead of waiting for it forever, and keep serving others."""
    fake_scp.ae.dimse_timeout = 1

    _fill(fake_archive, 3)

    def slow(event) -> int:
        threading.Event().wait(2.5)  # longer than our DIMSE timeout
        return 0x0000

    contexts, roles = _get_contexts()
    with scu.associate(_peer(fake_scp.port, timeout=3), contexts, ext_neg=roles,
                       handlers=[(evt.EVT_C_STORE, slow)]) as assoc:
        responses = [rsp for rsp, _ in assoc.send_c_get(build_identifier("STUDY", ["StudyInstanceUID=1.2.11"]),
                                                        uids.STUDY_ROOT_GET)]
    assert responses and all(rsp.get("Status") != 0x0000 for rsp in responses)
    assert scu.echo(_peer(fake_scp.port)) == 0x0000


def test_move_requester_that_aborts_midway_stops_it(fake_scp, fake_archive, storescp_port: int) -> None:
    """The requester aborts after the first pending response: the sub-operations stop and
    the server goes on serving."""
    _fill(fake_archive, 30)
    real_read = fake_archive.read_part10
    pace = threading.Semaphore(3)

    def paced_read(row, transfer_syntax=None):
        pace.acquire(timeout=5)  # three instances, then one more per release below (or 5 s)
        return real_read(row, transfer_syntax)

    fake_archive.read_part10 = paced_read
    with _destination(storescp_port) as dest_archive:
        with pytest.raises(RuntimeError), \
                scu.associate(_peer(fake_scp.port), [build_context(uids.STUDY_ROOT_MOVE, NATIVE)]) as assoc:
            for rsp, _ in assoc.send_c_move(build_identifier("STUDY", ["StudyInstanceUID=1.2.11"]),
                                            "STORESCP", uids.STUDY_ROOT_MOVE):
                assert rsp.Status == 0xFF00
                raise RuntimeError("abort now")  # scu.associate aborts on the way out
        for _ in range(30):
            pace.release()
        assert scu.echo(_peer(fake_scp.port)) == 0x0000
        for running in fake_scp.ae.active_associations:  # the C-MOVE handler has finished
            running.join(20)
    assert 0 < dest_archive.stores < 30


def test_send_buffers_gives_up_on_a_peer_that_reads_nothing() -> None:
    """A peer whose window stays full: TimeoutError and the connection shut down, not a
    send blocked forever."""
    from dimse.fastsend import send_buffers

    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    try:
        with pytest.raises(TimeoutError):
            send_buffers(a, [b"x" * (8 << 20)], timeout=0.2)
        with pytest.raises(OSError):
            send_buffers(a, [b"y"], timeout=0.2)
    finally:
        a.close()
        b.close()
