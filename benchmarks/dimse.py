"""DIMSE workloads: C-STORE with DCMTK storescu, C-FIND and C-MOVE with pynetdicom SCUs, C-GET
with DCMTK getscu (C: the receiver keeps up with the sender, as storescp does for C-MOVE).

DCMTK binaries are called by absolute path (a pip-installed pynetdicom puts same-named
scripts on PATH) with TCP_NODELAY=1 in their environment (measured-facts: Nagle costs ~40 ms
per exchange otherwise).
"""

from __future__ import annotations

import logging
import random
import re
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # pynetdicom makes its SOP classes at import time
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

from benchmarks.client import BenchError, percentile
from benchmarks.data import Corpus, CtStudy
from benchmarks.net import log_tail, nodelay_env, stop_process
from dimse.requestor import requeue_responses

STORESCU = "/usr/bin/storescu"
STORESCP = "/usr/bin/storescp"
GETSCU = "/usr/bin/getscu"
SCU_AET = "BENCHSCU"
SCP_AET = "BENCHSCP"
DIMSE_TIMEOUT_S = 60.0

logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # it logs identifiers at INFO


@dataclass(frozen=True)
class Peer:
    host: str
    port: int
    aet: str


def dcmtk_available() -> bool:
    return Path(STORESCU).exists() and Path(STORESCP).exists()


# --- C-STORE ----------------------------------------------------------------------------------

def c_store(peer: Peer, files: Sequence[Path], associations: int = 1,
            timeout_s: float = 600.0) -> dict[str, Any]:
    """Send `files` with `associations` concurrent storescu processes; instances/s overall."""
    if not Path(STORESCU).exists():
        raise BenchError(f"{STORESCU} not installed")
    shards = [list(files[i::associations]) for i in range(associations)]
    cmd = [STORESCU, "-aet", SCU_AET, "-aec", peer.aet, "-R", "-to", "30", "-ta", "30",
           "-td", "60", peer.host, str(peer.port)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd + [str(f) for f in shard], env=nodelay_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for shard in shards]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=max(1.0, timeout_s - (time.perf_counter() - t0))))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise BenchError(f"storescu did not finish within {timeout_s:.0f} s") from None
    elapsed = time.perf_counter() - t0
    for p, (_, err) in zip(procs, outs):
        if p.returncode != 0 or b"E:" in err:
            tail = err.decode(errors="replace").strip().splitlines()[-3:]
            raise BenchError(f"storescu exited {p.returncode}: {' | '.join(tail)}")
    return {"instances": len(files), "associations": associations, "seconds": elapsed,
            "instances_per_s": len(files) / elapsed}


# --- pynetdicom SCU helpers -----------------------------------------------------------------------

def _associate(ae: AE, peer: Peer) -> Association:
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.aet)
    if not assoc.is_established:
        raise BenchError(f"association to {peer.aet}@{peer.port} rejected or aborted "
                         f"(is {SCU_AET} a known peer?)")
    # pynetdicom 3.0.4 never sets TCP_NODELAY; without it each request waits ~40 ms for an ACK.
    sock = assoc.dul.socket.socket if assoc.dul.socket else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # pynetdicom's reader race (measured-facts): a response its reactor took goes back to the
    # caller instead of being lost (a miscount, or a final status waited for until the timeout)
    requeue_responses(assoc)
    return assoc


def _scu(contexts: Sequence[str]) -> AE:
    ae = AE(ae_title=SCU_AET)
    for c in contexts:
        ae.add_requested_context(c)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = DIMSE_TIMEOUT_S
    return ae


# --- C-FIND -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FindQuery:
    kind: str
    keys: dict[str, str]
    expected: int


def c_find_queries(corpus: Corpus, n: int, seed: int = 13) -> list[FindQuery]:
    """Study-level C-FIND identifiers with their expected match counts (no limit in C-FIND)."""
    rng = random.Random(seed)
    studies = list(corpus.studies)
    out: list[FindQuery] = []
    kinds = ["patient_id", "patient_name", "date_range", "modality_and_date"]
    for i in range(n):
        kind, s = kinds[i % len(kinds)], rng.choice(studies)
        if kind == "patient_id":
            keys = {"PatientID": s["PatientID"]}
            hits = sum(x["PatientID"] == s["PatientID"] for x in studies)
        elif kind == "patient_name":
            stem = s["PatientName"].split("=")[0]
            keys = {"PatientName": f"{stem[:-1]}*"}
            hits = sum(x["PatientName"].startswith(stem[:-1]) for x in studies)
        elif kind == "date_range":
            lo = date(rng.randint(2000, 2024), rng.randint(1, 12), 1)
            a, b = lo.strftime("%Y%m%d"), (lo + timedelta(days=31)).strftime("%Y%m%d")
            keys = {"StudyDate": f"{a}-{b}"}
            hits = sum(a <= x["StudyDate"] <= b for x in studies)
        else:
            m, y = rng.choice(["MR", "US", "MG", "NM"]), rng.randint(2000, 2025)
            keys = {"ModalitiesInStudy": m, "StudyDate": f"{y}0101-{y}1231"}
            hits = sum(m in x["ModalitiesInStudy"].split("\\") and x["StudyDate"][:4] == str(y)
                       for x in studies)
        out.append(FindQuery(kind, keys, hits))
    return out


def _identifier(keys: dict[str, str]) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = "STUDY"
    for k in ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate", "AccessionNumber",
              "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"):
        setattr(ds, k, "")
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def c_find(peer: Peer, queries: Sequence[FindQuery], per_association: int = 40,
           warmup: int = 5, deadline_s: float = 180.0) -> dict[str, Any]:
    """Time each query from request to final status on a few associations; p50/p95 in ms.

    A fresh association every `per_association` queries, and after any error or miscount,
    keeps pynetdicom's SCU race (measured-facts) from spreading; such a query is counted,
    not retried. No query starts after `deadline_s`.
    """
    ae = _scu([StudyRootQueryRetrieveInformationModelFind])
    times: list[float] = []
    wrong: dict[str, int] = {}
    wrong_examples: list[dict[str, Any]] = []
    errors: list[str] = []
    assoc: Association | None = None
    stop_at = time.monotonic() + deadline_s
    try:
        for i, q in enumerate([*queries[:warmup], *queries]):
            if time.monotonic() > stop_at:
                errors.append(f"time limit of {deadline_s:.0f} s reached after {i} queries")
                break
            if assoc is None or i % per_association == 0:
                if assoc is not None:
                    assoc.release()
                assoc = _associate(ae, peer)
            t0 = time.perf_counter()
            matches, status = 0, None
            for status, ident in assoc.send_c_find(_identifier(q.keys),
                                                   StudyRootQueryRetrieveInformationModelFind):
                # an empty status data set: pynetdicom gave up (abort, timeout, the SCU race)
                if status is None or "Status" not in status:
                    break
                if status.Status in (0xFF00, 0xFF01):
                    matches += 1
            ms = (time.perf_counter() - t0) * 1000
            if status is None or "Status" not in status or status.Status != 0x0000:
                errors.append(f"{q.kind}: status {getattr(status, 'Status', 'timeout')}")
                assoc.abort()
                assoc = None
                continue
            if i >= warmup:
                times.append(ms)
                if matches != q.expected:
                    wrong[q.kind] = wrong.get(q.kind, 0) + 1
                    if len(wrong_examples) < 5:
                        wrong_examples.append({"keys": {k: v for k, v in q.keys.items()
                                                        if k != "PatientName"},
                                               "expected": q.expected, "got": matches})
                    assoc.abort()  # the race may have left a response for the next query
                    assoc = None
    finally:
        if assoc is not None and assoc.is_established:
            assoc.release()
        ae.shutdown()
    if not times:
        raise BenchError(f"no C-FIND succeeded: {errors[0] if errors else 'no queries'}")
    return {"queries": len(times), "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95),
            "wrong_counts": wrong, "wrong_examples": wrong_examples, "errors": len(errors),
            "first_error": errors[0] if errors else None}


# --- C-MOVE -----------------------------------------------------------------------------------

class StoreScp:
    """DCMTK storescp receiving (and discarding) C-MOVE sub-operations on a fixed port."""

    def __init__(self, port: int, workdir: Path, aet: str = SCP_AET) -> None:
        if not Path(STORESCP).exists():
            raise BenchError(f"{STORESCP} not installed")
        self.port, self.aet = port, aet
        self.log_path = workdir / "storescp.log"
        workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            # --ignore: receive every byte but store nothing, so the sender is what is measured.
            self.proc = subprocess.Popen(
                [STORESCP, "--aetitle", aet, "--ignore", "-pm", "-dhl", str(port)],
                env=nodelay_env(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"storescp exited: {log_tail(self.log_path, 5)}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BenchError("storescp did not start listening within 10 s")

    def stop(self) -> None:
        stop_process(self.proc, grace=5)


def c_move(peer: Peer, ct: CtStudy, destination: str = SCP_AET,
           timeout_s: float = 600.0) -> dict[str, Any]:
    """C-MOVE the CT series to `destination`; completed sub-operations per second."""
    ae = _scu([StudyRootQueryRetrieveInformationModelMove])
    ae.dimse_timeout = timeout_s
    ident = Dataset()
    ident.QueryRetrieveLevel = "SERIES"
    ident.StudyInstanceUID = ct.study_uid
    ident.SeriesInstanceUID = ct.series_uid
    try:
        assoc = _associate(ae, peer)
        t0 = time.perf_counter()
        final = None
        for status, _ in assoc.send_c_move(ident, destination,
                                           StudyRootQueryRetrieveInformationModelMove):
            if status is None or "Status" not in status:
                raise BenchError("C-MOVE timed out or the association aborted")
            if status.Status not in (0xFF00,):
                final = status
        elapsed = time.perf_counter() - t0
        assoc.release()
    finally:
        ae.shutdown()
    if final is None:
        raise BenchError("C-MOVE gave no final status")
    done = int(getattr(final, "NumberOfCompletedSuboperations", 0) or 0)
    failed = int(getattr(final, "NumberOfFailedSuboperations", 0) or 0)
    if final.Status != 0x0000 or done != len(ct.files):
        raise BenchError(f"C-MOVE status 0x{final.Status:04X}: {done} completed, {failed} failed "
                         f"of {len(ct.files)}")
    return {"instances": done, "seconds": elapsed, "instances_per_s": done / elapsed}


def c_get(peer: Peer, ct: CtStudy, timeout_s: float = 600.0) -> dict[str, Any]:
    """C-GET the CT series with DCMTK `getscu --ignore` (receives every byte, stores nothing);
    completed sub-operations per second, from association request to release."""
    if not Path(GETSCU).exists():
        raise BenchError(f"{GETSCU} not installed")
    cmd = [GETSCU, "-v", "-aet", SCU_AET, "-aec", peer.aet, "--ignore", "-S", "-k", "QueryRetrieveLevel=SERIES",
           "-k", f"StudyInstanceUID={ct.study_uid}", "-k", f"SeriesInstanceUID={ct.series_uid}",
           peer.host, str(peer.port)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=nodelay_env(), timeout=timeout_s, check=False)
    elapsed = time.perf_counter() - t0
    out = done.stdout + done.stderr
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"Number of (\w+) Suboperations\s*:\s*(\d+)", out)}
    completed = counts.get("Completed", 0)
    if done.returncode != 0 or completed != len(ct.files):
        tail = " | ".join(out.strip().splitlines()[-3:])
        raise BenchError(f"getscu exit {done.returncode}: {completed} of {len(ct.files)} completed ({tail[:200]})")
    return {"instances": completed, "seconds": elapsed, "instances_per_s": completed / elapsed,
            "mb_per_s": ct.total_bytes / 1e6 / elapsed}
