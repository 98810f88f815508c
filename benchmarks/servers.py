"""A benchmarked server (Yunying or Orthanc) behind one handle, and what is read from it."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks import dimse
from benchmarks.net import REPO_ROOT, start_yunying
from benchmarks.orthanc import start_orthanc

PLACEHOLDER_PORT = 9  # the SCU never listens; peers tables still want an address


class Server:
    """One benchmarked server; restartable on the same data if something outside stops it."""

    def __init__(self, name: str, workdir: Path, scp_port: int, repo_root: Path | None = None) -> None:
        self.name, self.workdir, self.repo_root = name, workdir, repo_root
        self.peers = {dimse.SCU_AET: ("127.0.0.1", PLACEHOLDER_PORT),
                      dimse.SCP_AET: ("127.0.0.1", scp_port)}
        self.restarts = 0
        self.start()

    def start(self) -> None:
        if self.name == "orthanc":
            o = start_orthanc(self.workdir, aet="ORTHANC", modalities=self.peers)
            self.dicomweb_url, self.proc, self.data_dir = o.dicomweb_url, o.proc, o.storage_dir
            self.peer, self.stop = dimse.Peer("127.0.0.1", o.dimse_port, o.aet), o.stop
            self.headers: dict[str, str] = {}
        else:
            y = start_yunying(self.workdir / "data", aet="YUNYING", peers=self.peers,
                              log_path=self.workdir / "yunying.log",
                              repo_root=self.repo_root or REPO_ROOT)
            self.dicomweb_url, self.proc, self.data_dir = y.dicomweb_url, y.proc, y.data_dir
            self.peer, self.stop = dimse.Peer("127.0.0.1", y.dimse_port, y.aet), y.stop
            self.headers = y.headers  # the provisioned API key (issue 11)

    def listening(self) -> bool:
        if self.proc.poll() is not None:
            return False
        port = urlsplit(self.dicomweb_url).port
        try:
            socket.create_connection(("127.0.0.1", port or 80), timeout=2).close()
            return True
        except OSError:
            return False

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()

    def disk_bytes(self) -> int:
        return disk_bytes(self.data_dir)


def disk_bytes(path: Path) -> int:
    """Allocated bytes under `path`, as du counts them."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def tree_peak_rss(pid: int) -> int:
    """Sum of VmHWM over a process and its descendants (workers count too)."""
    return sum(p["VmHWM"] for p in tree_memory(pid).values())


def _pss(pid: int) -> int:
    """Proportional set size (bytes): shared pages divided among the processes sharing them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_memory(pid: int) -> dict[int, dict[str, Any]]:
    """VmRSS, VmHWM and Pss (bytes) and the command of a process and each of its descendants."""
    out: dict[int, dict[str, Any]] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        try:
            status = Path(f"/proc/{p}/status").read_text()
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        out[p] = {"cmd": cmd.strip()[:120], "Pss": _pss(p),
                  **{k: int(fields.get(k, "0 kB").split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}}
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return out


class PeakSampler:
    """The largest total PSS of a server's process tree, sampled while it works: workers that
    exit before the end count too (the tree's VmHWM at the end misses them), and pages that
    workers share with their forkserver count once (a sum of RSS counts them in every process)."""

    def __init__(self, pid: int | Callable[[], int], every_s: float = 0.25) -> None:
        """pid: the tree's root, or a callable giving it (a server restarted under a workload)."""
        self.pid, self.every_s, self.peak = pid, every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            pid = self.pid() if callable(self.pid) else self.pid
            self.peak = max(self.peak, sum(m["Pss"] or m["VmRSS"] for m in tree_memory(pid).values()))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak
