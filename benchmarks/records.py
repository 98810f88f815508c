"""HL7 v2 ADT messages through MLLP into a real `yunying serve` (issue 15 part 3: "1,000 ADT
messages through MLLP with the time taken").

    python -m benchmarks.records [--messages 1000] [--connections 1] [--app-database URL]

Each message is an ADT^A01 or A08 of one of messages/2 patients (a Chinese name, a resident ID
number with its check digit, an inpatient visit), sent by python-hl7's MLLPClient, which waits
for each ACK; every ACK must be AA. Prints the time taken, messages/s and ACK latency.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from hl7.client import MLLPClient

from benchmarks.net import free_port, start_yunying
from yunying.records.idcard import check_character


def adt(i: int, patients: int) -> bytes:
    n = i % patients
    first17 = f"110105{1950 + n % 50}{1 + n % 12:02d}{1 + n % 28:02d}{n % 1000:03d}"
    card = first17 + check_character(first17)
    event = "A01" if i < patients else "A08"
    return "\r".join([
        f"MSH|^~\\&|HIS|H1|YUNYING|YY|20260301120000||ADT^{event}^ADT_A01|B{i}|P|2.5|||||CHN|UNICODE UTF-8",
        f"EVN|{event}|20260301120000",
        (f"PID|1||P{n:06d}^^^HIS1^MR~{card}^^^CHN^NNCHN||王^小{n % 97}||{first17[6:14]}|{'MF'[n % 2]}|||"
         f"北京市^^北京^^100000||1380013{n % 10000:04d}"),
        f"PV1|1|I|放射科^3^{n % 40}||||||||||||||||ZY{n:06d}"]).encode() + b"\r"


def send(port: int, items: list[int], patients: int, latencies: list[float]) -> None:
    with MLLPClient("127.0.0.1", port) as client:
        for i in items:
            t0 = time.perf_counter()
            ack = client.send_message(adt(i, patients))
            latencies.append(time.perf_counter() - t0)
            if b"MSA|AA|" not in ack:
                raise SystemExit(f"message {i}: not accepted: {ack[:200]!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--app-database", default="", help="SQLAlchemy URL (default: SQLite in the data folder)")
    args = ap.parse_args(argv)
    port = free_port()
    os.environ["YUNYING_HL7_PORT"] = str(port)
    if args.app_database:
        os.environ["YUNYING_APP_DATABASE"] = args.app_database
    with tempfile.TemporaryDirectory() as tmp:
        server = start_yunying(Path(tmp) / "data")
        try:
            time.sleep(0.5)  # the listener starts right after the HTTP face answers
            latencies: list[float] = []
            shards = [list(range(c, args.messages, args.connections)) for c in range(args.connections)]
            t0 = time.perf_counter()
            threads = [threading.Thread(target=send, args=(port, s, max(1, args.messages // 2), latencies))
                       for s in shards]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.perf_counter() - t0
        finally:
            server.stop()
    lat = sorted(latencies)
    print(f"{len(lat)} ADT messages over MLLP ({args.connections} connection(s), "
          f"{'PostgreSQL' if args.app_database else 'SQLite'} record store): {took:.2f} s, "
          f"{len(lat) / took:.0f} messages/s; ACK latency p50 {statistics.median(lat) * 1000:.1f} ms, "
          f"p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
