"""CPU of the lean C-STORE receive loop alone (dimse/pdata.py Receiver), no archive behind it.

A forked peer feeds a loopback socket pair with P-DATA-TF PDUs of N CT-sized instances (512 KiB
data sets, PDVs of 16 KiB or 256 KiB) and drains the C-STORE-RSPs; the Receiver runs in this
process with a handler that only counts. Prints CPU µs per instance of this process (the peer
is another process) and the wall time. A/B: `python -m benchmarks.pdata_recv` in a checkout of
each side (`git archive REF | tar -x -C /tmp/x`; PYTHONPATH=/tmp/x).

    python -m benchmarks.pdata_recv [--n 400] [--size 524288] [--pdu 16384 262144] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import resource
import socket
import threading
import time

from dimse.fastsend import c_store_rq, message_pdus
from dimse.pdata import Cx, Receiver

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


def _peer(sock: socket.socket, n: int, size: int, max_pdu: int) -> None:
    data = os.urandom(size)
    drain = threading.Thread(target=lambda: [None for _ in iter(lambda: sock.recv(1 << 16), b"")], daemon=True)
    drain.start()
    for i in range(n):
        pdus = message_pdus(1, c_store_rq(CT, f"1.2.3.{i}", i + 1), data, max_pdu)
        sock.sendall(b"".join(pdus))
    sock.shutdown(socket.SHUT_WR)
    drain.join(30)


def one(n: int, size: int, max_pdu: int) -> tuple[float, float, float]:
    """(CPU µs per instance in the receiving process, of it in user mode, wall s): the system
    share is mostly the kernel's copy, which grows with the number of recv calls, and so with
    how the peer's writes interleave on a busy machine; the user share is the loop's own."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the peer
        ours.close()
        try:
            _peer(theirs, n, size, max_pdu)
        finally:
            os._exit(0)
    theirs.close()
    got = [0]

    def handler(fields: dict[int, bytes], cx: Cx, data: bytearray) -> tuple[int, str]:
        assert len(data) == size
        got[0] += 1
        return 0, ""

    receiver = Receiver(ours, [Cx(1, CT, EXPLICIT, True)], 262144, None, handler, lambda: False)
    before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    ended = receiver.run()
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - wall
    user = after.ru_utime - before.ru_utime
    cpu = user + after.ru_stime - before.ru_stime
    ours.close()
    os.waitpid(pid, 0)
    assert got[0] == n and ended.kind == "closed", (got[0], ended)
    return cpu / n * 1e6, user / n * 1e6, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--size", type=int, default=512 << 10)
    ap.add_argument("--pdu", type=int, nargs="+", default=[16384, 262144])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for max_pdu in args.pdu:
        runs = [one(args.n, args.size, max_pdu) for _ in range(args.rounds)]
        cpus, users = sorted(r[0] for r in runs), sorted(r[1] for r in runs)
        print(f"PDU {max_pdu:>6}: {cpus[len(cpus) // 2]:7.1f} µs CPU per {args.size >> 10} KiB instance, "
              f"{users[len(users) // 2]:6.1f} of it user (medians of {args.rounds}; all CPU "
              f"{', '.join(f'{c:.0f}' for c in cpus)}); wall {min(r[2] for r in runs):.2f} s for {args.n}")


if __name__ == "__main__":
    main()
