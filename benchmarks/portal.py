"""The patient portal (issue 14): time from scanning the QR code to the first image, on the
viewer's "4G poor" link (8 Mbit/s down, 2 up, 80 ms RTT) and on loopback, headless Chromium at
390x844 with an empty cache. The patient's own typing is not counted: the figure is the sum of
page ready (QR URL -> verification form), verification (send code + check + exam list) and
viewer (tap -> first image).

    python -m benchmarks.portal [--slices 100] [--runs 3] [--film-slices 300] [--out benchmarks/out]

It also times the cloud film of a --film-slices CT series (14x17 in at 300 dpi, PNG and PDF).

Figures on this machine are CPU-bound (SwiftShader, 2 shared cores): say so when quoting them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.data import build_ct
from benchmarks.net import YunyingServer, start_yunying
from benchmarks.viewer import ARGS, CHROMIUM, LOOPBACK, PHONE, POOR_4G, stow_files
from yunying.portal.sms import default_outbox


def outbox(server: YunyingServer) -> list[dict[str, Any]]:
    """What the file SMS gateway 'sent' (its outbox lives beside the data folder, not in it)."""
    return [json.loads(x) for x in default_outbox(Path(server.data_dir)).read_text().splitlines()]


def last_code(server: YunyingServer, phone: str) -> str:
    """The newest code the file gateway 'sent' to `phone`."""
    return [x for x in outbox(server) if x["phone"] == phone and "code" in x][-1]["code"]


def one_visit(browser: Any, server: YunyingServer, study: str, phone: str, network: dict[str, Any]) -> dict[str, float]:
    url = httpx.post(server.http_url + "/api/portal/exams", json={"study": study, "phone": phone},
                     headers=server.headers).json()["url"]
    ctx = browser.new_context(**PHONE, bypass_csp=True)  # Playwright polls string predicates with eval
    page = ctx.new_page()
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", network)
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("#verify:not([hidden]) #sms-form:not([hidden])")
    ready = time.perf_counter() - t0
    page.fill("#phone", phone)
    t1 = time.perf_counter()
    page.tap("#send")
    page.wait_for_function("document.querySelector('#send').disabled")
    sent = time.perf_counter() - t1
    page.fill("#code", last_code(server, phone))
    t2 = time.perf_counter()
    page.tap("#sms-submit")
    page.wait_for_selector("#home:not([hidden]) .exam .view")
    verified = sent + time.perf_counter() - t2
    t3 = time.perf_counter()
    page.tap(".exam .view")
    page.wait_for_function("performance.getEntriesByName('first-image').length > 0", timeout=120000)
    viewer = time.perf_counter() - t3
    ctx.close()
    return {"page_ms": ready * 1e3, "verify_ms": verified * 1e3, "viewer_ms": viewer * 1e3,
            "total_ms": (ready + verified + viewer) * 1e3}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--film-slices", type=int, default=300, help="CT slices of the cloud-film timing (0: skip)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    ct = build_ct(args.out / "data", args.slices, "P")
    with tempfile.TemporaryDirectory() as tmp, start_yunying(Path(tmp) / "data") as server:
        stow_files(server, list(ct.files))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            one_visit(browser, server, ct.study_uid, "13000000000", LOOPBACK)  # warm the server
            print(f"portal, QR -> first image, 512x512 CT of {args.slices} slices, phone 390x844 @3x, empty cache, "
                  f"median of {args.runs} (headless Chromium, SwiftShader; load average {os.getloadavg()[0]:.1f})")
            n = 1
            for name, net in (("loopback", LOOPBACK), ("4G poor 8/2 Mbit/s 80 ms", POOR_4G)):
                runs = []
                for _ in range(args.runs):  # a new phone per visit: the resend interval is per phone
                    runs.append(one_visit(browser, server, ct.study_uid, f"130{n:08d}", net))
                    n += 1
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                print(f"  {name:26s} total {med['total_ms']:5.0f} ms = page {med['page_ms']:4.0f} + verify "
                      f"{med['verify_ms']:4.0f} + viewer to first image {med['viewer_ms']:5.0f}")
            browser.close()
        if args.film_slices:
            film_ct = build_ct(args.out / "data", args.film_slices, "F")
            stow_files(server, list(film_ct.files))
            for fmt in ("png", "pdf"):
                times = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    r = httpx.get(f"{server.http_url}/api/portal/film?study={film_ct.study_uid}&format={fmt}",
                                  headers=server.headers, timeout=600)
                    r.raise_for_status()
                    times.append(time.perf_counter() - t0)
                print(f"  cloud film of a {args.film_slices}-image 512x512 CT ({fmt}, {len(r.content) >> 10} KB): "
                      f"median {statistics.median(times):.2f} s (min {min(times):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
