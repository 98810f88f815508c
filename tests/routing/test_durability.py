"""Forwarding survives a crash: an instance acknowledged by a C-STORE-RSP or a STOW-RS 200 is
forwarded after a SIGKILL of the real server process that came right after the answer."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
from pynetdicom import AE

from benchmarks.net import YunyingServer
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.routing.peers import FlakyScp, wait_for
from tests.routing.test_routing import (
    all_done,
    api,
    queue_of,
    start,
)


def kill(srv: YunyingServer) -> None:
    os.kill(srv.pid, signal.SIGKILL)
    srv.proc.wait(10)


def test_forwards_acknowledged_before_a_sigkill_are_sent_after_restart(tmp_path: Path, flaky: FlakyScp) -> None:
    data = tmp_path / "data"
    flaky.mode = "refuse"  # nothing leaves before the kill: what arrives after it came from the queue
    first = start(data)
    try:
        with api(first) as c:
            rid = c.post("/rules", json={"name": "crash", "match": {"modalities": ["CT"]}, "destination": {
                "kind": "dicom", "aet": "FLAKY", "host": "127.0.0.1", "port": flaky.port, "timeout": 2}}).json()["id"]
        by_dimse = [make_ct(number=i, patient_id="K1") for i in range(4)]
        ae = AE(ae_title="MODALITY1")
        ae.add_requested_context(by_dimse[0].SOPClassUID, by_dimse[0].file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", first.dimse_port, ae_title=first.aet)
        assert assoc.is_established
        for ds in by_dimse:
            assert assoc.send_c_store(ds).Status == 0x0000
        kill(first)  # right after the last C-STORE-RSP, before the release
        assoc.abort()
    finally:
        if first.proc.poll() is None:
            first.stop()
    second = start(data)
    try:
        by_stow = [make_ct(number=i, patient_id="K2") for i in range(3)]
        body, ctype = multipart(*[part10(ds) for ds in by_stow])
        r = httpx.post(second.dicomweb_url + "/studies", content=body, headers={**second.headers, "Content-Type": ctype},
                       timeout=30)
        assert r.status_code == 200, r.text
        kill(second)  # right after the 200
    finally:
        if second.proc.poll() is None:
            second.stop()
    flaky.mode = "accept"
    third = start(data)
    try:
        sent = {ds.SOPInstanceUID for ds in by_dimse + by_stow}
        assert wait_for(lambda: all_done(third, rid, len(sent)), 90), queue_of(third, rid)
        assert sent <= set(flaky.received)
    finally:
        third.stop()
