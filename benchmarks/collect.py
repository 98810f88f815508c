"""A synthetic source PACS (pynetdicom) and the collector benchmark (issue 15 part 1).

    python -m benchmarks.collect --studies 3000 --days 30     # a 30-day backfill, instances/s

The PACS generates its studies on the fly from their numbers (no files): study i is dated i %
days days before today, has `series` series of `instances` small CT images each. It answers
Study Root C-FIND (STUDY and SERIES levels), C-MOVE and C-GET, and can misbehave on purpose:
mode "garbage" (matches without a valid UID, counts that are not numbers), "duplicates" (every
match and every sub-operation twice).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.transport import ThreadedAssociationServer

from dimse.requestor import HANDLERS
from dimse.uids import STUDY_ROOT_FIND, STUDY_ROOT_GET, STUDY_ROOT_MOVE, VERIFICATION

ROOT = "1.2.826.0.1.3680043.8.498.77"
PIXELS = np.arange(16 * 16, dtype=np.uint16).reshape(16, 16).tobytes()


@dataclass
class SyntheticPacs:
    """A source PACS of `studies` generated studies, served by a pynetdicom SCP on 127.0.0.1."""

    studies: int
    days: int = 30
    series: int = 2
    instances: int = 2
    aet: str = "SYNTHPACS"
    seed: int = 1
    destinations: dict[str, tuple[str, int]] = field(default_factory=dict)
    mode: str = ""  # "", "garbage", "duplicates"
    refuse: bool = False  # reject every association (a PACS that does not know us)
    today: date = field(default_factory=date.today)
    removed: set[int] = field(default_factory=set)  # study numbers it no longer holds
    served: int = 0  # instances sent by C-MOVE / C-GET
    port: int = 0

    # -- the data ----------------------------------------------------------------------
    def study_uid(self, i: int) -> str:
        return f"{ROOT}.{self.seed}.{i + 1}"

    def study_date(self, i: int) -> date:
        return self.today - timedelta(days=i % self.days)

    def total_instances(self, day: date | None = None) -> int:
        return sum(self.series * self.instances for i in range(self.studies)
                   if i not in self.removed and (day is None or self.study_date(i) == day))

    def _number(self, uid: str) -> int | None:
        prefix = f"{ROOT}.{self.seed}."
        if not uid.startswith(prefix) or not uid[len(prefix):].isdigit():
            return None
        i = int(uid[len(prefix):]) - 1
        return i if 0 <= i < self.studies and i not in self.removed else None

    def instance(self, i: int, s: int, n: int) -> Dataset:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, f"{self.study_uid(i)}.{s + 1}.{n + 1}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = self.study_uid(i), f"{self.study_uid(i)}.{s + 1}"
        ds.PatientName, ds.PatientID = f"SYNTH^P{i % 997:04d}", f"SP{i % 997:04d}"
        ds.StudyDate = ds.SeriesDate = self.study_date(i).strftime("%Y%m%d")
        ds.StudyTime, ds.AccessionNumber, ds.StudyID = "101010", f"ACC{self.seed}{i + 1:06d}", str(i + 1)
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", s + 1, n + 1
        ds.Rows = ds.Columns = 16
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = PIXELS
        return ds

    # -- C-FIND ------------------------------------------------------------------------
    def _studies(self, identifier: Dataset) -> Iterator[int]:
        value = identifier.get("StudyInstanceUID", "") or ""
        uids = [str(v) for v in value] if not isinstance(value, str) else [u for u in value.split("\\") if u]
        if uids:  # one UID or a list (PS3.4 C.2.2.2.2)
            candidates: Any = [i for i in (self._number(u) for u in uids) if i is not None]
        else:
            candidates = (i for i in range(self.studies) if i not in self.removed)
        when = str(identifier.get("StudyDate", "") or "")
        low, _, high = when.partition("-") if "-" in when else (when, "", when)
        pid, acc = str(identifier.get("PatientID", "") or ""), str(identifier.get("AccessionNumber", "") or "")
        for i in candidates:
            d = self.study_date(i).strftime("%Y%m%d")
            if (low and d < low) or (high and d > high):
                continue
            if pid and pid != f"SP{i % 997:04d}" or acc and acc != f"ACC{self.seed}{i + 1:06d}":
                continue
            yield i

    def on_find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        identifier = event.identifier
        level = str(identifier.get("QueryRetrieveLevel", ""))
        answers: list[Dataset] = []
        if level == "STUDY":
            for i in self._studies(identifier):
                ds = Dataset()
                ds.QueryRetrieveLevel, ds.StudyInstanceUID = "STUDY", self.study_uid(i)
                ds.StudyDate = self.study_date(i).strftime("%Y%m%d")
                ds.NumberOfStudyRelatedInstances = self.series * self.instances
                if "SOPClassesInStudy" in identifier:
                    ds.SOPClassesInStudy = [CTImageStorage]
                answers.append(ds)
        elif level == "SERIES":
            number = self._number(str(identifier.get("StudyInstanceUID", "")))
            for s in range(self.series) if number is not None else ():
                assert number is not None
                ds = Dataset()
                ds.QueryRetrieveLevel, ds.StudyInstanceUID = "SERIES", self.study_uid(number)
                ds.SeriesInstanceUID = f"{self.study_uid(number)}.{s + 1}"
                ds.NumberOfSeriesRelatedInstances = self.instances
                answers.append(ds)
        else:
            yield 0xC000, None
            return
        if self.mode == "garbage" and answers:
            bad = Dataset()
            bad.QueryRetrieveLevel, bad.StudyInstanceUID, bad.SeriesInstanceUID = level, "not a uid!", "x.y"
            answers.insert(0, bad)
        for ds in answers:
            for _ in range(2 if self.mode == "duplicates" else 1):
                yield 0xFF00, ds
        yield 0x0000, None

    # -- C-MOVE / C-GET ----------------------------------------------------------------
    def _matching(self, identifier: Dataset) -> list[Dataset]:
        value = identifier.get("StudyInstanceUID", "")
        uids = [str(v) for v in value] if not isinstance(value, str) else value.split("\\")  # a UID list
        series = str(identifier.get("SeriesInstanceUID", "") or "")
        if series and len(uids) != 1:
            return []
        out = []
        for number in (self._number(u) for u in uids):
            if number is None:
                continue
            for s in range(self.series):
                if series and series != f"{self.study_uid(number)}.{s + 1}":
                    continue
                out += [self.instance(number, s, n) for n in range(self.instances)]
        return out * (2 if self.mode == "duplicates" else 1)

    def on_move(self, event: Any) -> Iterator[Any]:
        dest = self.destinations.get(str(event.move_destination).strip())
        if dest is None:
            yield None, None
            return
        yield dest[0], dest[1], {"evt_handlers": HANDLERS}  # TCP_NODELAY on the sub-association
        datasets = self._matching(event.identifier)
        yield len(datasets)
        for ds in datasets:
            self.served += 1
            yield 0xFF00, ds

    def on_get(self, event: Any) -> Iterator[Any]:
        datasets = self._matching(event.identifier)
        yield len(datasets)
        for ds in datasets:
            self.served += 1
            yield 0xFF00, ds

    # -- the SCP -----------------------------------------------------------------------
    def start(self, port: int = 0) -> SyntheticPacs:
        ae = AE(ae_title=self.aet)
        ae.maximum_associations = 32
        if self.refuse:
            ae.require_calling_aet = ["SOMEONE-ELSE"]
        for model in (VERIFICATION, STUDY_ROOT_FIND, STUDY_ROOT_MOVE, STUDY_ROOT_GET):
            ae.add_supported_context(model)
        ae.add_supported_context(CTImageStorage, ExplicitVRLittleEndian, scu_role=True, scp_role=True)
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        handlers: list[Any] = [*HANDLERS[:1], (evt.EVT_C_FIND, self.on_find), (evt.EVT_C_MOVE, self.on_move),
                               (evt.EVT_C_GET, self.on_get)]
        server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
        assert isinstance(server, ThreadedAssociationServer)  # block=False returns it
        self._server, self._ae = server, ae
        self.port = int(server.server_address[1])
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._ae.shutdown()


def silent_port() -> tuple[int, threading.Event]:
    """A TCP port that accepts connections and never answers (a source that times out)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()
    held: list[socket.socket] = []

    def hold() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except TimeoutError:
                continue
        for s in held:
            s.close()
        sock.close()

    threading.Thread(target=hold, daemon=True).start()
    return int(sock.getsockname()[1]), stop


# -- the benchmark ---------------------------------------------------------------------------
def serve_pacs(args: argparse.Namespace) -> int:
    """`--serve`: run the PACS in this process until killed (the benchmark starts it apart)."""
    pacs = SyntheticPacs(args.studies, args.days, args.series, args.instances,
                         destinations={k: (v.split(":")[0], int(v.split(":")[1])) for k, v in
                                       (d.split("=") for d in args.dest)}).start(args.port)
    print(json.dumps({"port": pacs.port}), flush=True)
    threading.Event().wait()
    return 0


def _start_archive(data: Path, sources: list[dict[str, Any]], env: dict[str, str], dimse_port: int) -> Any:
    import os
    from unittest.mock import patch

    from benchmarks.net import start_yunying

    with patch.dict(os.environ, {**env, "YUNYING_COLLECT_SOURCES": json.dumps(sources)}):
        return start_yunying(data, dimse_port=dimse_port)


def _wait(client: Any, known: set[int], poll: float = 0.5) -> dict[str, Any]:
    while True:
        runs = [r for r in client.get("/api/collect/runs", params={"source": "pacs"}).json()["runs"]
                if r["id"] not in known]
        if runs and runs[0]["state"] != "running":
            return dict(runs[0])
        time.sleep(poll)


def run_backfill(args: argparse.Namespace) -> dict[str, Any]:
    """A backfill of `days` days from a PACS in its own process, then the same range again, then a
    purge and one transparent re-fetch; figures from the wall clock around each."""
    import httpx

    from benchmarks.net import free_port

    ours, today = free_port(), date.today()
    pacs = subprocess.Popen([sys.executable, "-m", "benchmarks.collect", "--serve", "--studies", str(args.studies),
                             "--days", str(args.days), "--series", str(args.series), "--instances",
                             str(args.instances), "--dest", f"YUNYING=127.0.0.1:{ours}"],
                            stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent)
    assert pacs.stdout is not None
    port = json.loads(pacs.stdout.readline())["port"]
    total = args.studies * args.series * args.instances
    source = {"name": "pacs", "aet": "SYNTHPACS", "host": "127.0.0.1", "port": port, "retrieve": args.retrieve,
              "concurrency": args.concurrency, "timeout": 60}
    # a cache just under what the backfill brings: the purge afterwards drops ~15 %
    env = {"YUNYING_PEERS": json.dumps({"SYNTHPACS": ["127.0.0.1", port]}), "YUNYING_CACHE_CHECK_S": "86400",
           "YUNYING_DELIVERY_CACHE_BYTES": str(int(total * 1300 / 0.95)), "YUNYING_REFETCH_WAIT_S": "120"}
    out: dict[str, Any] = {"studies": args.studies, "days": args.days, "instances": total, "retrieve": args.retrieve,
                           "concurrency": args.concurrency}
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as tmp:
        srv = _start_archive(Path(tmp) / "data", [source], env, ours)
        try:
            with httpx.Client(base_url=srv.http_url, headers=srv.headers, timeout=300, trust_env=False) as c:
                window = {"kind": "backfill", "start": today.isoformat(),
                          "until": (today - timedelta(days=args.days - 1)).isoformat()}
                for label in ("backfill", "again"):
                    known = {r["id"] for r in c.get("/api/collect/runs").json()["runs"]}
                    started = time.perf_counter()
                    assert c.post("/api/collect/sources/pacs/runs", json=window).status_code == 202
                    done = _wait(c, known)
                    seconds = time.perf_counter() - started
                    fetched = done["counts"].get("instances_fetched", 0)
                    out[label] = {"state": done["state"], "seconds": round(seconds, 1), "instances_fetched": fetched,
                                  "instances_per_s": round(fetched / seconds, 1), "error": done["error"]}
                held = c.get("/dicomweb/studies", params={"limit": "100000", "includefield": "00201208"}).json()
                out["held"] = {"studies": len(held), "instances": sum(s["00201208"]["Value"][0] for s in held)}
                started = time.perf_counter()
                out["purge"] = {**c.post("/api/lifecycle/purge").json(), "seconds": round(time.perf_counter() - started, 1)}
                purged = [s["0020000D"]["Value"][0] for s in held][:args.studies]
                gone = next(u for u in purged if c.get(f"/api/lifecycle/studies/{u}").json()["purged"])
                started = time.perf_counter()
                r = c.get(f"/dicomweb/studies/{gone}/metadata")
                out["refetch"] = {"status": r.status_code, "instances": len(r.json()),
                                  "seconds": round(time.perf_counter() - started, 3)}
        finally:
            srv.stop()
            pacs.kill()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.collect")
    parser.add_argument("--studies", type=int, default=3000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--series", type=int, default=2)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--retrieve", choices=("move", "get"), default="move")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--dest", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve_pacs(args)
    result = run_backfill(args)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
