"""Ingest workers killed while storage associations run (issue 9): nothing acknowledged is lost.

Three pynetdicom associations store at once (so the stores go to the worker processes) over
the lean path, while the workers are killed with SIGKILL again and again. Every instance
answered Success must be stored and read back as sent; a failure status is allowed
(0x0110: the worker died twice under it), a lost acknowledged instance is not.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from conftest import SCP_AET, SCU_AET, make_instance, start_scp, stored_dataset, stored_sops
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE

from dimse.server import DimseServer
from yunying.archive import Archive

CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture
def pooled(tmp_path: Path) -> Iterator[Archive]:
    arch = Archive(tmp_path / "data", ingest_processes=2)
    yield arch
    arch.close()


@pytest.fixture
def pooled_scp(pooled: Archive, storescp_port: int) -> Iterator[DimseServer]:
    server = start_scp(pooled, storescp_port)
    yield server
    server.stop()


def _send(port: int, files: list[Path], statuses: dict[str, int]) -> None:
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(CT, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title=SCP_AET)
    assert assoc.is_established
    try:
        for path in files:
            ds = pydicom.dcmread(path)
            answer = assoc.send_c_store(ds)
            statuses[str(ds.SOPInstanceUID)] = int(answer.Status) if "Status" in answer else -1
    finally:
        assoc.release()


def test_workers_killed_mid_association_lose_nothing_acknowledged(pooled: Archive, pooled_scp: DimseServer,
                                                                  tmp_path: Path) -> None:
    study = generate_uid()
    shards = [[make_instance(tmp_path / f"s{a}-{i}.dcm", study=study, series=generate_uid(), sop=generate_uid())
               for i in range(12)] for a in range(3)]
    statuses: dict[str, int] = {}
    senders = [threading.Thread(target=_send, args=(pooled_scp.port, shard, statuses)) for shard in shards]
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        pool = pooled._pool
        assert pool is not None
        while not stop.wait(0.05):
            for pid in pool.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
    k = threading.Thread(target=killer)
    for t in senders:
        t.start()
    k.start()
    for t in senders:
        t.join(120)
    stop.set()
    k.join()
    assert len(statuses) == 36, "every C-STORE got an answer"
    assert killed, "no worker was killed: the test proved nothing"
    assert set(statuses.values()) <= {0x0000, 0x0110}, statuses
    acknowledged = {sop for sop, status in statuses.items() if status == 0x0000}
    assert acknowledged, "nothing was acknowledged"
    held = stored_sops(pooled)
    assert acknowledged <= held, f"{len(acknowledged - held)} acknowledged instance(s) lost"
    sent = {str(pydicom.dcmread(p).SOPInstanceUID): p for shard in shards for p in shard}
    for sop in acknowledged:
        assert stored_dataset(pooled, sop) == pydicom.dcmread(sent[sop])
