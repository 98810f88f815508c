"""`python -m benchmarks.retrieve_cpu [yunying,orthanc] [runs]`: whole-instance retrieval side by
side, with the server's CPU seconds per request beside the wall-clock rate (issue 9 part 4).

On a shared machine the MB/s of one retrieve swings 2-3x with the other processes; the CPU the
server spent on it (user + system of its process tree, /proc) does not, and says what the rate
would be on an idle machine. The first WADO-RS series retrieve is reported apart: it streams and
is hashed on the way (no Want-Repr-Digest), a repeat streams with that digest in its headers.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import data, dimse, stow, wado
from benchmarks.ingest import tree_cpu
from benchmarks.net import REPO_ROOT, auth_headers, free_port
from benchmarks.servers import Server


def _cpu(pid: int) -> float:
    own, children = tree_cpu(pid)
    return own + children


def series_once(server: Server, ct: data.CtStudy) -> tuple[float, float, float]:
    """(MB/s, ms to the first byte, server CPU s) of one series retrieve with curl."""
    config = "".join(f'header = "{k}: {v}"\n' for k, v in auth_headers(server.dicomweb_url).items())
    url = f"{server.dicomweb_url}/studies/{ct.study_uid}/series/{ct.series_uid}"
    before = _cpu(server.proc.pid)
    fields = "%{http_code} %{size_download} %{time_starttransfer} %{time_total}"
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", fields, "-H", f"Accept: {wado.SERIES_ACCEPT}",
                          "--config", "-", url], input=config, capture_output=True, text=True, check=False,
                         timeout=600).stdout.split()
    cpu = _cpu(server.proc.pid) - before
    if not out or out[0] != "200":
        raise SystemExit(f"{server.name}: series retrieve answered {out[:1]}")
    size, first, total = int(out[1]), float(out[2]), float(out[3])
    return size / 1e6 / total, first * 1000, cpu


def main(argv: list[str]) -> None:
    names = (argv[0] if argv else "yunying,orthanc").split(",")
    runs = int(argv[1]) if len(argv) > 1 else 3
    ct = data.build_ct(Path(tempfile.gettempdir()) / "yunying-bench-data")
    work = Path(tempfile.mkdtemp(prefix="retrieve-cpu-"))
    scp_port = free_port()
    scp = dimse.StoreScp(scp_port, work)
    try:
        for name in names:
            server = Server(name, work / name, scp_port, repo_root=REPO_ROOT)
            try:
                stow.stow(server.dicomweb_url, list(ct.files), clients=2)
                time.sleep(2)  # let the ingest settle before the first read
                for i in range(runs):
                    mbps, first_ms, cpu = series_once(server, ct)
                    label = "first" if i == 0 else "repeat"
                    print(f"{name:8} WADO-RS series {label:6} {mbps:7.1f} MB/s  first byte {first_ms:5.0f} ms"
                          f"  server CPU {cpu:5.2f} s", flush=True)
                for label, fn in (("C-MOVE", dimse.c_move), ("C-GET", dimse.c_get)):
                    for _ in range(runs):
                        before = _cpu(server.proc.pid)
                        r = fn(server.peer, ct)
                        cpu = _cpu(server.proc.pid) - before
                        print(f"{name:8} {label:14} {r['instances_per_s']:7.1f} inst/s"
                              f"{'':20}server CPU {cpu:5.2f} s", flush=True)
            finally:
                server.stop()
    finally:
        scp.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("load average", " ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main(sys.argv[1:])
