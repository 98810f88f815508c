"""Ingest workers killed while storage associations run (issue 9): nothing acknowledged is lost.

Three pynetdicom associations store at once over the lean path, each served by an ingest
worker process lent to it (dimse/fastrecv.py), while those workers are killed with SIGKILL
again and again. An association whose worker dies is aborted (what the worker was reading is
gone; the peer resends, as a modality does, on a new association, served by a new worker).
Every instance answered Success must be stored and read back as sent; a failure status is
allowed (0x0110), a lost acknowledged instance is not.
"""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pydicom
import pytest
from conftest import SCP_AET, SCU_AET, make_instance, stored_dataset, stored_sops
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE

from dimse.server import DimseServer
from yunying.archive import Archive

CT = "1.2.840.10008.5.1.4.1.1.2"
KILL_EVERY = 3  # answered stores between two kills: at most 12 kills for the 36 instances


@pytest.fixture
def ingest_processes() -> int:
    return 2  # two workers to kill while three associations store


def _send(port: int, files: list[Path], statuses: dict[str, int], aborts: list[int]) -> None:
    """Send every file, resending on a new association after an abort (at most 20 aborts)."""
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(CT, ExplicitVRLittleEndian)
    todo = list(files)
    while todo and len(aborts) < 20:
        assoc = ae.associate("127.0.0.1", port, ae_title=SCP_AET)
        if not assoc.is_established:  # refused or cut while the machine is loaded: try again
            aborts.append(1)
            continue
        broken = False
        try:
            while todo:
                ds = pydicom.dcmread(todo[0])
                answer = assoc.send_c_store(ds)
                if "Status" not in answer:  # aborted under it: not acknowledged, resend
                    broken = True
                    break
                statuses[str(ds.SOPInstanceUID)] = int(answer.Status)
                todo.pop(0)
        except RuntimeError:  # aborted between two stores
            broken = True
        finally:
            if broken:
                aborts.append(1)
                assoc.abort()  # it may still look established for a moment: never wait on a release
            elif assoc.is_established:
                assoc.release()


def test_workers_killed_mid_association_lose_nothing_acknowledged(pooled: Archive, pooled_scp: DimseServer,
                                                                  tmp_path: Path) -> None:
    study = generate_uid()
    shards = [[make_instance(tmp_path / f"s{a}-{i}.dcm", study=study, series=generate_uid(), sop=generate_uid())
               for i in range(12)] for a in range(3)]
    statuses: dict[str, int] = {}
    aborts: list[int] = []
    senders = [threading.Thread(target=_send, args=(pooled_scp.port, shard, statuses, aborts)) for shard in shards]
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        pool = pooled._pool
        assert pool is not None
        answered = 0
        while not stop.wait(0.3):
            # paced on progress, not on the clock alone: on a loaded machine a kill every 0.3 s
            # cut the associations faster than they stored, and the senders ran out of resends
            if len(statuses) < answered + KILL_EVERY:
                continue
            for pid in pool.lent_pids()[:1]:  # one association at a time: the others progress
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    answered = len(statuses)
                except ProcessLookupError:
                    pass
    k = threading.Thread(target=killer)
    for t in senders:
        t.start()
    k.start()
    for t in senders:
        t.join(180)
    stop.set()
    k.join()
    assert killed and aborts, "no lent worker was killed under an association: the test proved nothing"
    assert set(statuses.values()) <= {0x0000, 0x0110}, statuses
    acknowledged = {sop for sop, status in statuses.items() if status == 0x0000}
    assert len(acknowledged) > 12, "hardly anything was acknowledged"
    held = stored_sops(pooled)
    assert acknowledged <= held, f"{len(acknowledged - held)} acknowledged instance(s) lost"
    sent = {str(pydicom.dcmread(p).SOPInstanceUID): p for shard in shards for p in shard}
    for sop in acknowledged:
        assert stored_dataset(pooled, sop) == pydicom.dcmread(sent[sop])
