"""The lean data path of storage associations (dimse/fastrecv.py), against real peers and a
raw-socket peer that breaks PS3.8 on purpose: clear statuses, aborts, nothing half-stored."""
from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pydicom
import pytest
from conftest import SCU_AET, make_instance, run, stored_sops
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE

from dimse import fastrecv
from dimse.fastsend import (
    Buffer,
    _parse_command,
    c_store_rq,
    command_set,
    message_pdus,
    part10_body,
)
from dimse.pdata import Ended

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
FIND = "1.2.840.10008.5.1.4.1.2.2.1"
VERIFICATION = "1.2.840.10008.1.1"


@pytest.fixture
def lean_calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per association served by the lean path (its Receiver ran)."""
    calls: list[bool] = []
    run_ = fastrecv.Receiver.run

    def counting(self: fastrecv.Receiver) -> Ended:
        calls.append(True)
        return run_(self)
    monkeypatch.setattr(fastrecv.Receiver, "run", counting)
    return calls


def _instance(tmp_path: Path, n: int = 0, study: str | None = None) -> tuple[Path, pydicom.Dataset]:
    path = make_instance(tmp_path / f"i{n}.dcm", study=study or generate_uid(), series=generate_uid(),
                         sop=generate_uid())
    return path, pydicom.dcmread(path)


# -- a peer that speaks PS3.8 by hand --------------------------------------------------------

def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


class RawPeer:
    """An association requested by hand: A-ASSOCIATE-RQ with the given contexts, then raw PDUs."""

    def __init__(self, port: int, contexts: list[str], syntax: str = ExplicitVRLittleEndian,
                 max_pdu: int = 16384) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        items = b"".join(_item(0x20, bytes([2 * i + 1, 0, 0, 0]) + _item(0x30, uid.encode())
                               + _item(0x40, syntax.encode())) for i, uid in enumerate(contexts))
        user = _item(0x50, _item(0x51, struct.pack(">I", max_pdu)) + _item(0x52, b"1.2.3.4"))
        body = (struct.pack(">HH", 1, 0) + b"YUNYING".ljust(16) + SCU_AET.encode().ljust(16) + bytes(32)
                + _item(0x10, b"1.2.840.10008.3.1.1.1") + items + user)
        self.sock.sendall(struct.pack(">BBI", 1, 0, len(body)) + body)
        kind, pdu = self.read_pdu()
        assert kind == 0x02, f"association not accepted (PDU 0x{kind:02X})"
        self.accepted = self._accepted(pdu)

    @staticmethod
    def _accepted(pdu: bytes) -> set[int]:
        pos, out = 68, set()
        while pos + 4 <= len(pdu):
            kind, length = pdu[pos], struct.unpack_from(">H", pdu, pos + 2)[0]
            if kind == 0x21 and pdu[pos + 6] == 0:
                out.add(pdu[pos + 4])
            pos += 4 + length
        return out

    def read_pdu(self) -> tuple[int, bytes]:
        head = self._exact(6)
        kind, _, length = struct.unpack(">BBI", head)
        return kind, self._exact(length)

    def _exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            got = self.sock.recv(n - len(out))
            if not got:
                raise ConnectionError("closed")
            out += got
        return out

    def send(self, *pdus: Buffer) -> None:
        self.sock.sendall(b"".join(bytes(p) for p in pdus))

    def response(self) -> dict[int, bytes]:
        """The next response's command elements (reads until the last command fragment)."""
        command = b""
        while True:
            kind, pdu = self.read_pdu()
            assert kind == 0x04, f"PDU 0x{kind:02X} instead of a response"
            pos = 0
            while pos < len(pdu):
                length, _, control = struct.unpack_from(">IBB", pdu, pos)
                command += pdu[pos + 6:pos + 4 + length]
                pos += 4 + length
            if control & 2:
                return _parse_command(command)

    def release(self) -> int:
        self.send(struct.pack(">BBI", 5, 0, 4) + bytes(4))
        kind, _ = self.read_pdu()
        self.sock.close()
        return kind

    def close(self) -> None:
        self.sock.close()


def _status(fields: dict[int, bytes]) -> int:
    return int(struct.unpack("<H", fields[0x0900])[0])


def _store_pdus(ds: pydicom.Dataset, path: Path, cx: int = 1, sop_class: str | None = None,
                max_pdu: int = 16384) -> list[Buffer]:
    body = part10_body(path.read_bytes())
    return message_pdus(cx, c_store_rq(sop_class or str(ds.SOPClassUID), str(ds.SOPInstanceUID), 7),
                        body, max_pdu)


# -- real peers ----------------------------------------------------------------------------

def test_storescu_goes_the_lean_way_and_reads_back_at_once(scp, archive, tmp_path, lean_calls) -> None:
    files = [_instance(tmp_path, i)[0] for i in range(5)]
    res = run("storescu", "-aet", SCU_AET, "-aec", "YUNYING", "127.0.0.1", str(scp.port), *map(str, files))
    assert res.returncode == 0, res.stderr
    assert lean_calls, "storescu's association was served by pynetdicom, not the lean path"
    assert {str(pydicom.dcmread(f).SOPInstanceUID) for f in files} <= stored_sops(archive)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_pynetdicom_store_is_dataset_equal_and_read_your_writes(scp, archive, tmp_path, lean_calls, syntax) -> None:
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(CT, syntax)
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="YUNYING")
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0  # Verification on a storage association
        for i in range(3):
            path, ds = _instance(tmp_path, i)
            ds.file_meta.TransferSyntaxUID = syntax
            ds.save_as(path, enforce_file_format=True)  # encoded in `syntax`
            ds = pydicom.dcmread(path)
            assert assoc.send_c_store(ds).Status == 0
            # acknowledged: found by the very next query, and every element comes back
            assert str(ds.SOPInstanceUID) in stored_sops(archive)
            row = archive.row(str(ds.SOPInstanceUID))
            assert row is not None
            back = archive.read_dataset(row)
            sent = pydicom.dcmread(path)
            for elem in sent:
                assert back[elem.tag].value == elem.value, elem.keyword
    finally:
        assoc.release()
    assert lean_calls


def test_mixed_association_stays_with_pynetdicom(scp, archive, tmp_path, lean_calls) -> None:
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(CT, ExplicitVRLittleEndian)
    ae.add_requested_context(FIND)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="YUNYING")
    try:
        _path, ds = _instance(tmp_path)
        assert assoc.send_c_store(ds).Status == 0
    finally:
        assoc.release()
    assert not lean_calls
    assert str(ds.SOPInstanceUID) in stored_sops(archive)


def test_another_pynetdicom_version_is_never_bypassed(scp, archive, tmp_path, lean_calls, monkeypatch) -> None:
    monkeypatch.setattr(fastrecv, "PINNED", "0.0.0")
    path, ds = _instance(tmp_path)
    res = run("storescu", "-aet", SCU_AET, "-aec", "YUNYING", "127.0.0.1", str(scp.port), str(path))
    assert res.returncode == 0, res.stderr
    assert not lean_calls and str(ds.SOPInstanceUID) in stored_sops(archive)


# -- the raw peer: fragments, small PDUs, bad input ----------------------------------------------

def test_small_pdus_and_fragmented_command(scp, archive, tmp_path, lean_calls) -> None:
    peer = RawPeer(scp.port, [CT], max_pdu=64)  # our response must fit the peer's 64-byte PDUs
    path, ds = _instance(tmp_path)
    peer.send(*_store_pdus(ds, path, max_pdu=64))  # command in 58-byte fragments too
    fields = peer.response()
    assert _status(fields) == 0 and fields[0x1000].rstrip(b"\0").decode() == str(ds.SOPInstanceUID)
    assert peer.release() == 0x06  # A-RELEASE-RP: release stays pynetdicom's
    assert lean_calls and str(ds.SOPInstanceUID) in stored_sops(archive)


def test_messages_and_release_in_one_write_are_all_served(scp, archive, tmp_path, lean_calls) -> None:
    """The lean path reads ahead (several PDUs per recv): two instances and the A-RELEASE-RQ
    sent at once are two responses, then the release pynetdicom answers (it gets the PDUs
    read with the last message)."""
    peer = RawPeer(scp.port, [CT])
    (p1, d1), (p2, d2) = _instance(tmp_path, 1), _instance(tmp_path, 2)
    peer.send(*_store_pdus(d1, p1), *_store_pdus(d2, p2), struct.pack(">BBI", 5, 0, 4) + bytes(4))
    assert [_status(peer.response()), _status(peer.response())] == [0, 0]
    kind, _ = peer.read_pdu()
    peer.close()
    assert kind == 0x06  # A-RELEASE-RP
    assert lean_calls and {str(d1.SOPInstanceUID), str(d2.SOPInstanceUID)} <= set(stored_sops(archive))


def test_class_not_of_the_context_is_refused(scp, archive, tmp_path) -> None:
    peer = RawPeer(scp.port, [CT])
    path, ds = _instance(tmp_path)
    peer.send(*_store_pdus(ds, path, sop_class=MR))  # MR named on the CT context
    fields = peer.response()
    assert _status(fields) == 0x0122 and b"context" in fields.get(0x0902, b"")
    path2, ds2 = _instance(tmp_path, 1)
    peer.send(*_store_pdus(ds2, path2))  # the association goes on
    assert _status(peer.response()) == 0
    peer.release()
    assert str(ds.SOPInstanceUID) not in stored_sops(archive)
    assert str(ds2.SOPInstanceUID) in stored_sops(archive)


def test_empty_data_set_gets_a_failure_status(scp, archive) -> None:
    peer = RawPeer(scp.port, [CT])
    command = c_store_rq(CT, generate_uid(), 3)
    peer.send(*message_pdus(1, command, b"\x08\x00\x16\x00", 16384))  # 4 bytes: no element
    assert _status(peer.response()) & 0xF000 in (0xA000, 0xC000)
    peer.release()
    assert not stored_sops(archive)


def _aborted(peer: RawPeer) -> bool:
    try:
        kind, _ = peer.read_pdu()
    except (ConnectionError, OSError):
        return True
    return kind == 0x07


@pytest.mark.parametrize("how", ["item_overruns_pdu", "unaccepted_context", "data_before_command",
                                 "command_outside_group_0000", "find_on_storage_context"])
def test_malformed_pdata_aborts_and_stores_nothing(scp, archive, tmp_path, how) -> None:
    peer = RawPeer(scp.port, [CT])
    _path, ds = _instance(tmp_path)
    if how == "item_overruns_pdu":
        bad = struct.pack(">BBIIBB", 4, 0, 12, 400, 1, 3) + bytes(6)
        peer.send(bad)
    elif how == "unaccepted_context":
        peer.send(*message_pdus(9, c_store_rq(CT, str(ds.SOPInstanceUID), 1), b"\0" * 8, 16384))
    elif how == "data_before_command":
        peer.send(struct.pack(">BBIIBB", 4, 0, 10, 6, 1, 2) + bytes(4))
    elif how == "command_outside_group_0000":
        peer.send(*message_pdus(1, struct.pack("<HHI", 8, 0x16, 2) + b"1\0", b"", 16384)[:1])
    else:
        find = command_set((0x0002, CT.encode()), (0x0100, struct.pack("<H", 0x0020)),
                           (0x0110, struct.pack("<H", 1)), (0x0700, struct.pack("<H", 0)),
                           (0x0800, struct.pack("<H", 0x0101)))
        peer.send(*message_pdus(1, find, b"", 16384)[:1])
    assert _aborted(peer)
    peer.close()
    assert not stored_sops(archive)
    # the SCP still serves the next peer
    path2, ds2 = _instance(tmp_path, 2)
    res = run("storescu", "-aet", SCU_AET, "-aec", "YUNYING", "127.0.0.1", str(scp.port), str(path2))
    assert res.returncode == 0, res.stderr
    assert stored_sops(archive) == {str(ds2.SOPInstanceUID)}


@pytest.mark.parametrize("end", ["a_abort", "close"])
def test_cut_off_mid_instance_stores_nothing(scp, archive, tmp_path, end) -> None:
    peer = RawPeer(scp.port, [CT], max_pdu=4096)
    path, ds = _instance(tmp_path)
    pdus = _store_pdus(ds, path, max_pdu=4096)
    assert len(pdus) > 6  # command PDU + several data set PDUs
    peer.send(*pdus[:len(pdus) // 2])  # half the data set, no last fragment
    if end == "a_abort":
        peer.send(struct.pack(">BBI", 7, 0, 4) + bytes([0, 0, 0, 0]))
    peer.close()
    res = run("echoscu", "-aet", SCU_AET, "-aec", "YUNYING", "127.0.0.1", str(scp.port))
    assert res.returncode == 0, res.stderr
    assert not stored_sops(archive)
    assert not list((archive.data_dir / "store" / "objects").rglob("*.dcm"))  # nothing half-written


def test_unknown_ae_refused_on_the_lean_path(scp, archive, tmp_path, lean_calls) -> None:
    path, ds = _instance(tmp_path)
    res = run("storescu", "-aet", "STRANGER", "-aec", "YUNYING", "127.0.0.1", str(scp.port), str(path))
    assert res.returncode != 0 or "Refused" in res.stderr + res.stdout
    assert str(ds.SOPInstanceUID) not in stored_sops(archive)


def test_a_peer_storing_at_once_still_goes_the_lean_way(scp, archive, tmp_path, lean_calls, monkeypatch) -> None:
    """The DUL reads nothing after the A-ASSOCIATE-AC until EVT_ESTABLISHED's handler took the
    socket: a peer's first P-DATA, sent the moment the AC arrived, was read by the DUL first
    whenever that handler was slow to run (a loaded machine), and pynetdicom served it all."""
    from dimse import associations

    established = associations.on_established

    def slow(event: object) -> None:
        time.sleep(0.3)  # the handler runs late, as on a loaded machine
        established(event)  # type: ignore[arg-type]
    monkeypatch.setattr(associations, "on_established", slow)
    peer = RawPeer(scp.port, [CT])
    path, ds = _instance(tmp_path)
    peer.send(*_store_pdus(ds, path))  # at once, while the handler still sleeps
    assert _status(peer.response()) == 0
    assert peer.release() == 0x06
    assert lean_calls, "the DUL read the first P-DATA: the association fell back to pynetdicom"
    assert str(ds.SOPInstanceUID) in stored_sops(archive)
