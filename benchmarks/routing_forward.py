"""Routing to Orthanc: what a matching rule costs the sender, and the forwarding rate.

    python -m benchmarks.routing_forward --instances 300

One Yunying (accept-all AEs) and one Orthanc (Debian), both with TCP_NODELAY. Phase A stores N
small CT instances over one C-STORE association with no rule; phase B adds a C-STORE rule to
Orthanc and stores N more, then waits until the queue is done. Prints instances/s for both
stores and the forwarding rate (first store to last acknowledgement by Orthanc). A phase with
a matching rule whose destination is down isolates the queueing cost from the forwarding's
CPU (on 2 cores, the forwarder and Orthanc compete with ingest).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from pynetdicom import AE

from benchmarks.net import nodelay_env, start_yunying
from benchmarks.orthanc import start_orthanc
from tests.dicomweb.helpers import make_ct


def c_store(port: int, datasets: list) -> float:
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(datasets[0].SOPClassUID, datasets[0].file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="YUNYING")
    start = time.perf_counter()
    for ds in datasets:
        assoc.send_c_store(ds)
    took = time.perf_counter() - start
    assoc.release()
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=300)
    n = ap.parse_args().instances
    import os
    os.environ.update({k: v for k, v in nodelay_env().items() if k.startswith("TCP")})
    os.environ["YUNYING_DIMSE_ACCEPT_ALL"] = "true"
    with tempfile.TemporaryDirectory() as tmp:
        orthanc = start_orthanc(Path(tmp) / "orthanc")
        ours = start_yunying(Path(tmp) / "data")
        try:
            plain = c_store(ours.dimse_port, [make_ct(number=i, rows=256, cols=256) for i in range(n)])
            api = httpx.Client(base_url=ours.http_url + "/api/routing", headers=ours.headers, timeout=30)
            # the hook's own cost: a matching rule whose destination refuses at once (port 9)
            down = api.post("/rules", json={"name": "down", "destination": {
                "kind": "dicom", "aet": "DOWN", "host": "127.0.0.1", "port": 9}}).json()["id"]
            queued = c_store(ours.dimse_port, [make_ct(number=i, rows=256, cols=256) for i in range(n)])
            api.delete(f"/rules/{down}")
            rule = api.post("/rules", json={"name": "bench", "destination": {
                "kind": "dicom", "aet": "ORTHANC", "host": "127.0.0.1", "port": orthanc.dimse_port}}).json()["id"]
            start = time.perf_counter()
            routed = c_store(ours.dimse_port, [make_ct(number=i, rows=256, cols=256) for i in range(n)])
            while True:
                counts = next(r["counts"] for r in api.get("/rules").json() if r["id"] == rule)
                if counts["done"] + counts["failed"] >= n:
                    break
                time.sleep(0.1)
            forwarded = time.perf_counter() - start
        finally:
            ours.stop()
            orthanc.stop()
    print(f"C-STORE into Yunying, no rule:       {n / plain:7.1f} instances/s")
    print(f"C-STORE into Yunying, rule queueing only (destination down): {n / queued:7.1f} instances/s")
    print(f"C-STORE into Yunying, rule forwarding meanwhile: {n / routed:7.1f} instances/s")
    print(f"forwarded to Orthanc (C-STORE):      {n / forwarded:7.1f} instances/s "
          f"({counts['done']} done, {counts['failed']} failed)")


if __name__ == "__main__":
    main()
