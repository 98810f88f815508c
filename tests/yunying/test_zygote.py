"""The ingest workers' forkserver is a fork of the server (yunying.zygote, issue 9 part 5): no
second interpreter importing the ingest modules again, no resource tracker; it and its workers end
with the server, however the server ends."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.net import REPO_ROOT, start_yunying


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return sorted(out)


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def alive(pid: int) -> bool:
    try:
        return b"zombie" not in Path(f"/proc/{pid}/status").read_bytes().lower()
    except OSError:
        return False


def wait_until(check: object, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_the_servers_forkserver_is_a_fork_of_it_and_forks_the_workers(tmp_path: Path) -> None:
    server = start_yunying(tmp_path / "data")
    try:
        kids = children(server.pid)
        # one child: the fork (the same command line as the server); no `python -c from
        # multiprocessing.forkserver ...`, no `... resource_tracker ...`
        assert [cmdline(k) for k in kids] == [cmdline(server.pid)], [cmdline(k)[:80] for k in kids]
        forkserver = kids[0]
        # the ingest workers (started with the archive) are its children
        assert wait_until(lambda: len(children(forkserver)) >= 1)
        workers = children(forkserver)
    finally:
        server.stop()
    assert wait_until(lambda: not alive(forkserver) and not any(alive(w) for w in workers))


SCRIPT = """
import sys, threading, time
from yunying import zygote
if sys.argv[2] == "thread":
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
pid = zygote.start()
from yunying.archive import Archive
a = Archive(sys.argv[1], ingest_processes=1)
deadline = time.monotonic() + 60
while not a._pool.pids() and time.monotonic() < deadline:
    time.sleep(0.05)
print(pid, *a._pool.pids(), flush=True)
time.sleep(600)
"""


def run_script(data: Path, mode: str) -> tuple[subprocess.Popen[bytes], list[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(data), mode], stdout=subprocess.PIPE, env=env,
                            cwd=REPO_ROOT)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().decode().split()


def test_a_killed_server_takes_its_forkserver_and_workers_with_it(tmp_path: Path) -> None:
    proc, out = run_script(tmp_path / "data", "plain")
    try:
        fork, worker = int(out[0]), int(out[1])
        assert children(proc.pid) == [fork] and children(fork) == [worker]
    finally:
        proc.send_signal(signal.SIGKILL)  # no drain, no close
        proc.wait()
    assert wait_until(lambda: not alive(fork) and not alive(worker))


def test_a_process_with_threads_is_not_forked_and_gets_multiprocessings_forkserver(tmp_path: Path) -> None:
    proc, out = run_script(tmp_path / "data", "thread")
    try:
        assert out[0] == "None"
        worker = int(out[1])
        (forkserver,) = [k for k in children(proc.pid) if b"multiprocessing.forkserver" in cmdline(k)]
        assert children(forkserver) == [worker]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
