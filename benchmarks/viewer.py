"""The web viewer's targets (issue 13), measured in headless Chromium with DevTools network
emulation: time to the first painted image and to full fidelity (User Timing marks
"first-image" and "full-fidelity") on loopback and on "4G poor" (8 Mbit/s down, 2 up, 80 ms RTT)
with an empty cache, the compressed size of the viewer's own files, one W/L redraw, and the JS
heap after scrolling a long series end to end.

    python -m benchmarks.viewer [--slices 300] [--long 1000] [--out benchmarks/out]

Figures on this machine are CPU-bound (WebGL2 through SwiftShader): say so when quoting them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from benchmarks.data import build_ct
from benchmarks.net import YunyingServer, start_yunying

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
POOR_4G = {"offline": False, "latency": 80, "downloadThroughput": 8e6 / 8, "uploadThroughput": 2e6 / 8}
LOOPBACK = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 3}
OWN_FILES = ("/viewer/", "/common/", "/i18n/")


def stow_files(server: YunyingServer, files: list[Path], per_request: int = 25) -> None:
    with httpx.Client(timeout=300, headers=server.headers) as c:
        for i in range(0, len(files), per_request):
            boundary = uuid.uuid4().hex
            body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n"
                            + f.read_bytes() + b"\r\n" for f in files[i:i + per_request]) + f"--{boundary}--\r\n".encode()
            r = c.post(f"{server.dicomweb_url}/studies", content=body, headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'})
            r.raise_for_status()


DESKTOP = {"viewport": {"width": 1366, "height": 768}}
# OHIF marks nothing: the first non-black pixel of its viewport canvas, polled every 50 ms
OHIF_PAINT_JS = """setInterval(() => { if (performance.getEntriesByName('first-image').length) return;
  for (const c of document.querySelectorAll('canvas.cornerstone-canvas')) {
    const x = c.width && c.getContext('2d'); if (!x) continue;
    const d = x.getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4 * 61) if (d[i] | d[i + 1] | d[i + 2]) { performance.mark('first-image'); return; } }
}, 50);"""


def open_once(browser: Any, address: str, network: dict[str, Any], context: dict[str, Any] = PHONE,
              ohif: bool = False) -> dict[str, float]:
    """One visit with an empty cache: the marks and the bytes of the viewer's own files (for OHIF
    every file that is not DICOMweb)."""
    # Playwright polls string predicates with eval, which the pages' CSP forbids (issue 12)
    ctx = browser.new_context(**context, bypass_csp=True)
    page = ctx.new_page()
    if ohif:
        page.add_init_script(OHIF_PAINT_JS)
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", network)
    urls: dict[str, str] = {}
    own = [0]

    def counted(url: str) -> bool:
        return "/dicomweb" not in url if ohif else any(p in url for p in OWN_FILES)

    cdp.on("Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"]))
    cdp.on("Network.loadingFinished", lambda e: own.__setitem__(0, own[0] + e["encodedDataLength"])
           if counted(urls.get(e["requestId"], "")) else None)
    page.goto(address)
    done = "first-image" if ohif else "full-fidelity"
    page.wait_for_function(f"performance.getEntriesByName('{done}').length > 0", timeout=180000)
    page.wait_for_timeout(300)
    marks = page.evaluate("Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))")
    ctx.close()
    return {"first_image_ms": marks.get("first-image", float("nan")),
            "full_fidelity_ms": marks.get("full-fidelity", float("nan")), "own_files_kb": own[0] / 1024}


def side_by_side(browser: Any, server: YunyingServer, address: str, study: str, runs: int) -> None:
    """Ours and OHIF 3.13 (prebuilt dist, behind the conformance suite's proxy) at 1366x768."""
    from conformance.ohif import fetch_ohif, serve_ohif

    with serve_ohif(fetch_ohif(), server.dicomweb_url, api_key=server.api_key) as ohif:
        target = f"{ohif.url}/viewer?StudyInstanceUIDs={study}"
        open_once(browser, target, LOOPBACK, DESKTOP, ohif=True)  # OHIF's first answers
        print("  side by side at 1366x768 (OHIF: first painted canvas pixel, polled every 50 ms; "
              "its DICOMweb goes through a Python proxy):")
        for name, net in (("loopback", LOOPBACK), ("4G poor", POOR_4G)):
            ours = [open_once(browser, address, net, DESKTOP) for _ in range(runs)]
            theirs = [open_once(browser, target, net, DESKTOP, ohif=True) for _ in range(runs)]
            for who, rs in (("Yunying", ours), ("OHIF", theirs)):
                print(f"    {name:9s} {who:8s} first image {statistics.median(r['first_image_ms'] for r in rs):6.0f} ms "
                      f"({spread(rs, 'first_image_ms')})   app files {statistics.median(r['own_files_kb'] for r in rs):8.1f} KB")


def redraw_ms(browser: Any, address: str) -> float:
    """Median time of one W/L change drawn and flushed (readPixels waits for the GPU)."""
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True)
    page = ctx.new_page()
    page.goto(address)
    page.wait_for_function("performance.getEntriesByName('full-fidelity').length > 0", timeout=60000)
    times = page.evaluate("""() => { const vp = window.yunyingViewer.viewports[0], out = [];
      const gl = vp.renderer.gl, px = new Uint8Array(4);
      for (let i = 0; i < 60; i++) { const t0 = performance.now();
        vp.view.width = 400 + i * 10; vp.draw();
        if (gl) gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
        else vp.renderer.ctx.getImageData(0, 0, 1, 1);
        out.push(performance.now() - t0); }
      return out; }""")
    ctx.close()
    return float(statistics.median(times))


def cine_fps(browser: Any, address: str, seconds: float = 3.0) -> float:
    """Frames shown per second by cine at 30 fps once the series is in memory (desktop)."""
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True)
    page = ctx.new_page()
    page.goto(address)
    page.wait_for_function("performance.getEntriesByName('full-fidelity').length > 0", timeout=60000)
    page.wait_for_function("""(() => { const v = window.yunyingViewer, vp = v.viewports[0];
      return vp.series.images.length > 1 && v.loader.fetched >= vp.series.images.length; })()""", timeout=300000)
    page.evaluate("window.yunyingViewer.cine.start()")
    page.wait_for_timeout(seconds * 1000)
    fps = float(page.evaluate("window.yunyingViewer.cine.measured()"))
    ctx.close()
    return fps


def scroll_heap(browser: Any, address: str) -> dict[str, float]:
    """Scroll a long series end to end on a phone; the heap and our cache's bytes after."""
    ctx = browser.new_context(**PHONE, bypass_csp=True)
    page = ctx.new_page()
    cdp = ctx.new_cdp_session(page)
    page.goto(address)
    page.wait_for_function("performance.getEntriesByName('full-fidelity').length > 0", timeout=120000)
    page.wait_for_function("document.querySelectorAll('.series-card').length > 0", timeout=120000)  # all metadata in
    n = page.evaluate("window.yunyingViewer.viewports[0].series.images.length")
    page.evaluate("""async (n) => { const vp = window.yunyingViewer.viewports[0];
      for (let i = 0; i < n; i++) { vp.setIndex(i); await vp.loader.load(vp.series, i, 0).catch(() => {});
        await new Promise(r => requestAnimationFrame(r)); } }""", n)
    cdp.send("HeapProfiler.collectGarbage")
    heap = cdp.send("Runtime.getHeapUsage")
    cache = page.evaluate("window.yunyingViewer.loader.cache.bytes")
    budget = page.evaluate("window.yunyingViewer.loader.cache.budget")
    ctx.close()
    return {"images": n, "js_heap_mb": heap["usedSize"] / 2**20,
            "backing_store_mb": heap.get("backingStorageSize", 0) / 2**20,
            "cache_mb": cache / 2**20, "cache_budget_mb": budget / 2**20}


def tools(browser: Any, address: str, saves: int = 5) -> dict[str, float]:
    """Doctors' tools at 1366x768: a W/L redraw with sharpening (canvas 2D), saving one length as
    an SR (build + STOW, click to "saved"), exporting the series as MP4 (render, upload, encode)."""
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, accept_downloads=True, bypass_csp=True)
    page = ctx.new_page()
    page.goto(address)
    page.wait_for_function("performance.getEntriesByName('full-fidelity').length > 0", timeout=60000)
    page.wait_for_selector(".series-card", timeout=120000)
    sharp = page.evaluate("""() => { const vp = window.yunyingViewer.viewports[0], out = []; vp.set({ sharpen: 1 });
      for (let i = 0; i < 60; i++) { const t0 = performance.now(); vp.view.width = 400 + i * 10; vp.draw();
        vp.renderer.ctx?.getImageData(0, 0, 1, 1); out.push(performance.now() - t0); } return out; }""")
    page.evaluate("""() => { const v = window.yunyingViewer, vp = v.viewports[0], im = vp.series.images[0];
      v.measurements.load([{ kind: "length", points: [[10, 10], [200, 200]], sop: im.sop, frame: im.frame }]); }""")
    saved = []
    for _ in range(saves):
        page.evaluate("document.querySelector('#status').textContent = ''")
        page.click("#group-measure")  # save lives in the Measure menu (toolbar.js)
        t0 = time.perf_counter()
        page.click("#save")
        page.wait_for_function("document.querySelector('#status').textContent.length > 0 && "
                               "!document.querySelector('#status').textContent.includes('…')", timeout=60000)
        saved.append((time.perf_counter() - t0) * 1000)
    page.click("#group-study")
    page.click("#export")
    t0 = time.perf_counter()
    with page.expect_download(timeout=600000) as done:
        page.click("#export-mp4")
    mp4 = Path(done.value.path()).stat().st_size
    took = time.perf_counter() - t0
    ctx.close()
    return {"sharpen_ms": float(statistics.median(sharp)), "save_ms": float(statistics.median(saved)),
            "mp4_s": took, "mp4_kb": mp4 / 1024}


def spread(runs: list[dict[str, float]], key: str) -> str:
    return f"{min(r[key] for r in runs):.0f}-{max(r[key] for r in runs):.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--long", type=int, default=1000, help="images of the series scrolled for the heap figure (0: skip)")
    ap.add_argument("--runs", type=int, default=5, help="visits per network profile (the median is printed)")
    ap.add_argument("--ohif", action="store_true", help="also measure OHIF 3.13 (conformance.ohif) side by side")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--tools", action="store_true", help="also time sharpening, saving an SR and the MP4 export")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    ct = build_ct(args.out / "data", args.slices, "V")
    long = build_ct(args.out / "data", args.long, "W") if args.long else None
    with tempfile.TemporaryDirectory() as tmp, start_yunying(Path(tmp) / "data") as server:
        stow_files(server, list(ct.files))
        if long:
            stow_files(server, list(long.files))
        base = f"{server.http_url}/viewer/?study={{}}{{}}#access_token={server.api_key}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            open_once(browser, base.format(ct.study_uid, ""), LOOPBACK)  # the server's first answers after ingest
            print(f"viewer, 512x512 CT of {args.slices} slices, phone 390x844 @3x, empty cache, median (min-max) of "
                  f"{args.runs} (headless Chromium, SwiftShader: CPU-bound; load average {os.getloadavg()[0]:.1f})")
            for name, net in (("loopback", LOOPBACK), ("4G poor 8/2 Mbit/s 80 ms", POOR_4G)):
                runs = [open_once(browser, base.format(ct.study_uid, ""), net) for _ in range(args.runs)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                print(f"  {name:26s} first image {med['first_image_ms']:5.0f} ms ({spread(runs, 'first_image_ms')})   "
                      f"full fidelity {med['full_fidelity_ms']:5.0f} ms ({spread(runs, 'full_fidelity_ms')})   "
                      f"viewer files {med['own_files_kb']:.1f} KB transferred")
            for label, query in (("auto (canvas 2D on SwiftShader)", ""), ("WebGL2 forced", "&renderer=webgl2")):
                ms = redraw_ms(browser, base.format(ct.study_uid, query))
                print(f"  W/L redraw at 1366x768, {label}: median of 60 {ms:.2f} ms")
            if args.ohif:
                side_by_side(browser, server, base.format(ct.study_uid, ""), ct.study_uid, args.runs)
            fps = cine_fps(browser, base.format(ct.study_uid, ""))
            print(f"  cine of the cached series at 30 fps, 1366x768: {fps:.1f} frames/s shown")
            if args.tools:
                t = tools(browser, base.format(ct.study_uid, ""))
                print(f"  tools at 1366x768: W/L redraw with sharpen {t['sharpen_ms']:.1f} ms (canvas 2D, median of 60); "
                      f"save one length as SR {t['save_ms']:.0f} ms (median of 5); MP4 of the {args.slices} slices "
                      f"{t['mp4_s']:.1f} s, {t['mp4_kb']:.0f} KB")
            if long:
                h = scroll_heap(browser, base.format(long.study_uid, ""))
                print(f"  scrolled {h['images']} images end to end: JS heap {h['js_heap_mb']:.1f} MB, "
                      f"pixel cache {h['cache_mb']:.0f} MB of a {h['cache_budget_mb']:.0f} MB budget, "
                      f"array buffers {h['backing_store_mb']:.0f} MB")
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
