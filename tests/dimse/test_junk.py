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
    """One malformed association attempt; the junk client never waits long for an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
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
