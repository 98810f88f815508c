"""The ingest workers' forkserver as a fork of the server, made before any thread starts.

multiprocessing's forkserver is a fresh interpreter that imports the ingest modules again: ~47 MiB
of PSS of its own once its workers have exited (issue 9 part 5), plus the resource tracker it
starts (~8 MiB). A fork of the server made right after those modules are imported shares their
pages with the server (copy on write), so the forkserver, and the workers it forks, hold little
memory of their own. It must be made while the server has one thread (a fork copies locks held
by other threads in their held state), i.e. first thing in `yunying serve`.

It runs multiprocessing's own forkserver loop (`multiprocessing.forkserver.main`) and is installed
as the process's forkserver, so `IngestPool` (context "forkserver") uses it unchanged; if it
dies, multiprocessing starts an ordinary forkserver in its place. It reaches into
multiprocessing's private state (the forkserver's address and pids, the resource tracker's pipe)
as Python 3.11 has it; on another Python the ordinary forkserver starts instead (WRITTEN_FOR).
"""
from __future__ import annotations

import gc
import importlib
import os
import socket
import sys
import threading
from multiprocessing import connection, forkserver, resource_tracker, util
from typing import Any

WRITTEN_FOR = (3, 11)  # the multiprocessing internals below are those of this Python


def start(preload: tuple[str, ...] = ("yunying.workers",)) -> int | None:
    """Fork the forkserver from this process; its pid, or None when this process already has
    other threads or runs another Python (then multiprocessing starts its own forkserver when one
    is needed)."""
    if threading.active_count() > 1 or not hasattr(os, "fork") or sys.version_info[:2] != WRITTEN_FOR:
        return None
    for name in preload:
        importlib.import_module(name)
    # the workers register no semaphores or shared memory: the resource tracker (a third
    # process) has nothing to clean up; a write-only /dev/null stands in for its pipe
    tracker: Any = resource_tracker._resource_tracker  # type: ignore[attr-defined]  # no public way to skip it
    if tracker._fd is None:
        tracker._fd = os.open(os.devnull, os.O_WRONLY)
    # a full collection writes into the header of every object it walks: after the fork it
    # would copy every page the two processes share
    gc.freeze()
    server: Any = forkserver._forkserver  # type: ignore[attr-defined]  # what ensure_running reads
    with socket.socket(socket.AF_UNIX) as listener:
        address = connection.arbitrary_address("AF_UNIX")  # type: ignore[attr-defined]
        listener.bind(address)
        if not util.is_abstract_socket_namespace(address):  # type: ignore[attr-defined]
            os.chmod(address, 0o600)
        listener.listen()
        alive_r, alive_w = os.pipe()  # the forkserver exits when the server's end closes
        pid = os.fork()
        if pid == 0:  # the forkserver: serve fork requests until the server is gone
            code = 1
            try:
                os.close(alive_w)
                forkserver.main(listener.fileno(), alive_r, [])  # type: ignore[attr-defined]
            except SystemExit:
                code = 0
            finally:
                os._exit(code)  # never the server's atexit handlers
        os.close(alive_r)
    server._forkserver_address = address
    server._forkserver_alive_fd = alive_w
    server._forkserver_pid = pid
    return pid
