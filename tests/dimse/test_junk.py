"""Issue 10 part 4: junk never locks out valid peers. Hundreds of malformed associations (random
A-ASSOCIATE-RQs with 128 contexts, TLS ClientHellos, garbage, broken P-DATA, PDUs claiming 4 GB),
then C-ECHO and C-STORE from a valid peer succeed, with pynetdicom and DCMTK."""
from __future__ import annotations

import random
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE

from benchmarks.net import YunyingServer, start_yunying
from tests.conftest import missing_tool
from tests.dicomweb.helpers import make_ct

VERIFICATION = "1.2.840.10008.1.1"
JUNK = 300  # more than the SCP's 64 association slots, several times over
KINDS = ("associate_128", "tls_hello", "huge_pdu", "garbage", "broken_pdata")


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def associate_rq(rnd: random.Random, contexts: int, calling: bytes) -> bytes:
    """An A-ASSOCIATE-RQ (PS3.8 9.3.2) with random abstract syntaxes and a random maximum PDU size."""
    items = b"".join(_item(0x20, bytes([(2 * i + 1) & 0xFF, 0, 0, 0]) + _item(0x30, f"1.2.{rnd.randrange(1 << 30)}.{i}".encode())
                           + _item(0x40, b"1.2.840.10008.1.2")) for i in range(contexts))
    user = _item(0x50, _item(0x51, struct.pack(">I", rnd.choice([0, 1, 16384, 0xFFFFFFFF]))))
    body = (struct.pack(">HH", 1, 0) + b"YUNYING".ljust(16) + calling.ljust(16)[:16] + bytes(32)
            + _item(0x10, b"1.2.840.10008.3.1.1.1") + items + user)
    return struct.pack(">BBI", 1, 0, len(body)) + body


def junk(port: int, kind: str, rnd: random.Random) -> None:
    """One malformed association attempt; the junk client never waits long for an answer (the
    connect may: a loaded CI box accepts slowly, and a junk thread that died on it was noise)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.settimeout(0.3)
        try:
            if kind == "associate_128":
                s.sendall(associate_rq(rnd, 128, rnd.randbytes(16)))
            elif kind == "tls_hello":
                ctx = ssl.create_default_context()
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
                ctx.wrap_socket(s, server_hostname="pacs", do_handshake_on_connect=False).do_handshake()
            elif kind == "huge_pdu":  # a P-DATA-TF header claiming ~4 GB, then a trickle
                s.sendall(struct.pack(">BBI", 4, 0, 0xFFFFFFF0) + rnd.randbytes(100))
            elif kind == "garbage":
                s.sendall(rnd.randbytes(rnd.randrange(1, 3000)))
            else:  # a Verification association, then a P-DATA-TF whose item overruns the PDU
                s.sendall(associate_rq(rnd, 1, b"JUNK"))
                s.recv(65536)
                s.sendall(struct.pack(">BBI", 4, 0, 20) + struct.pack(">I", 5000) + b"\x01\x03" + rnd.randbytes(14))
            s.recv(100)
        except (OSError, ssl.SSLError):
            pass


def flood(port: int, count: int) -> None:
    rnd = random.Random(10)
    jobs = [(KINDS[i % len(KINDS)], random.Random(rnd.random())) for i in range(count)]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not jobs:
                    return
                kind, r = jobs.pop()
            junk(port, kind, r)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[YunyingServer]:
    srv = start_yunying(tmp_path / "data", peers={"VALID": ("127.0.0.1", 1)})
    yield srv
    srv.stop()


def echo_and_store(server: YunyingServer) -> str:
    ds = make_ct()
    ae = AE(ae_title="VALID")
    ae.acse_timeout = ae.dimse_timeout = 20
    ae.add_requested_context(VERIFICATION)
    ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title=server.aet)
    assert assoc.is_established, "a valid peer was refused after junk"
    try:
        assert assoc.send_c_echo().Status == 0x0000
        assert assoc.send_c_store(ds).Status == 0x0000
    finally:
        assoc.release()
    return str(ds.SOPInstanceUID)


def test_valid_peers_are_served_after_hundreds_of_junk_associations(archive: YunyingServer) -> None:
    flood(archive.dimse_port, JUNK)
    # a few connections that stall mid-PDU stay open meanwhile: they hold a slot each, no more
    stalled = []
    for _ in range(8):
        s = socket.create_connection(("127.0.0.1", archive.dimse_port))
        s.sendall(struct.pack(">BBI", 1, 0, 0x7FFFFFFF) + b"\x00\x01")
        stalled.append(s)
    try:
        sop = echo_and_store(archive)
        if not Path("/usr/bin/echoscu").exists():
            missing_tool("DCMTK echoscu is not installed")
        done = subprocess.run(["/usr/bin/echoscu", "-aet", "VALID", "-aec", archive.aet, "-to", "20",
                               "127.0.0.1", str(archive.dimse_port)], capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr.decode()
        flood(archive.dimse_port, JUNK // 3)  # and again, with the stalled ones still open
        echo_and_store(archive)
    finally:
        for s in stalled:
            s.close()
    found = httpx.get(f"{archive.dicomweb_url}/instances", params={"SOPInstanceUID": sop}, headers=archive.headers)
    assert found.status_code == 200 and len(found.json()) == 1
    assert archive.proc.poll() is None  # the server is still running


CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def storage_association(port: int) -> socket.socket:
    """A raw, established storage association (CT, Explicit VR LE): its P-DATA goes to dimse/fastrecv.py."""
    context = _item(0x20, bytes([1, 0, 0, 0]) + _item(0x30, CT_STORAGE.encode())
                    + _item(0x40, ExplicitVRLittleEndian.encode()))
    user = _item(0x50, _item(0x51, struct.pack(">I", 16384)) + _item(0x52, b"1.2.826.0.1.3680043.10.1"))
    body = (struct.pack(">HH", 1, 0) + b"YUNYING".ljust(16) + b"VALID".ljust(16) + bytes(32)
            + _item(0x10, b"1.2.840.10008.3.1.1.1") + context + user)
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(struct.pack(">BBI", 1, 0, len(body)) + body)
    head = s.recv(6)
    assert head[:1] == b"\x02", f"not associated: {head!r}"  # A-ASSOCIATE-AC
    s.recv(struct.unpack(">I", head[2:6])[0], socket.MSG_WAITALL)
    return s


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS"))


def test_a_non_data_pdu_claiming_1_gib_on_a_storage_association_is_aborted(archive: YunyingServer) -> None:
    """dimse/fastrecv.py read a PDU's claimed length into one buffer at once: an A-RELEASE-RQ
    header claiming 1 GiB took 1 GiB of the server's memory, then waited for the bytes."""
    before = rss(archive.pid)
    release = storage_association(archive.dimse_port)
    try:
        release.sendall(struct.pack(">BBI", 5, 0, 1 << 30) + b"\x00" * 100)  # A-RELEASE-RQ "of 1 GiB"
        try:
            answer = release.recv(1)
        except TimeoutError:
            answer = b""
        assert answer == b"\x07", "the server did not abort the association (A-ABORT)"
    finally:
        release.close()
    assert rss(archive.pid) - before < 256 << 20
    echo_and_store(archive)  # and valid peers are still served


def test_p_data_claims_are_not_allocated_before_their_bytes_arrive(archive: YunyingServer) -> None:
    """16 storage associations each sending a P-DATA-TF header claiming 60 MiB, and 100 bytes:
    the server held 60 MiB per connection before a byte of the PDU had come."""
    before = rss(archive.pid)
    stalled = [storage_association(archive.dimse_port) for _ in range(16)]
    try:
        for s in stalled:
            s.sendall(struct.pack(">BBI", 4, 0, 60 << 20) + struct.pack(">IBB", (60 << 20) - 4, 1, 0) + b"\x00" * 100)
        deadline, grown = time.monotonic() + 2, 0
        while time.monotonic() < deadline:  # an allocation, if any, follows the header at once
            grown = max(grown, rss(archive.pid) - before)
            time.sleep(0.05)
        assert grown < 256 << 20, f"RSS grew {grown >> 20} MiB for 16 connections that sent 106 bytes each"
    finally:
        for s in stalled:
            s.close()
    echo_and_store(archive)
