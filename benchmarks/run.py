"""The benchmark run: build data, start each server, run every workload, report.

`python -m benchmarks [--vs-orthanc | --only NAME] [--quick] [--out DIR]`
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import dimse, pixels, qido, stow, wado
from benchmarks.data import Corpus, CtStudy, build_corpus, build_ct, corpus_subset
from benchmarks.net import REPO_ROOT, free_port, yunying_cli_available
from benchmarks.orthanc import orthanc_available
from benchmarks.report import Results
from benchmarks.servers import PeakSampler, Server, tree_memory, tree_peak_rss
from benchmarks.shaped import replay_floor, shaped_first_image


@dataclass(frozen=True)
class Profile:
    studies: int
    ct_slices: int
    qido_queries: int
    metadata_runs: int
    frame_latency_requests: int
    frame_seconds: float
    find_queries: int
    frame_requests: int     # per throughput run (1 and 8 clients)
    cstore_instances: int   # per C-STORE run (1 and 4 associations)
    corpus_seconds: float   # corpus load time limit per server; the rest is not sent
    rendered_requests: int = 300  # distinct slices rendered (uncached)
    thumb_repeats: int = 50       # repeated (cached) thumbnail requests per level
    cine_passes: int = 3          # whole-series cine passes, median reported
    ttfi_runs: int = 9            # time-to-first-image runs
    mpr_requests: int = 30        # coronal MPR positions after the cold one
    shaped_runs: int = 7          # first-image runs over the emulated 4G link, per sequence
    retrieve_runs: int = 3        # whole-series WADO-RS retrieves, median reported
    small_studies: int = 8000     # small studies (~20,000 instances) sent by 4 parallel storescu


FULL = Profile(studies=5000, ct_slices=300, qido_queries=600, metadata_runs=7,
               frame_latency_requests=200, frame_seconds=6.0, find_queries=200,
               frame_requests=1500, cstore_instances=300, corpus_seconds=330)
QUICK = Profile(studies=400, ct_slices=300, qido_queries=200, metadata_runs=3,
                frame_latency_requests=100, frame_seconds=3.0, find_queries=80,
                frame_requests=500, cstore_instances=100, corpus_seconds=40,
                rendered_requests=100, thumb_repeats=30, cine_passes=1, ttfi_runs=5,
                mpr_requests=12, shaped_runs=3, retrieve_runs=1, small_studies=200)


@dataclass
class Data:
    ct: CtStudy        # STOW, metadata, frames, C-MOVE, disk, import
    ct_store1: CtStudy  # C-STORE over one association (new UIDs)
    ct_store4: CtStudy  # C-STORE over four associations (new UIDs)
    corpus: Corpus
    small: Corpus | None = None  # C-STORE of small instances (UIDs distinct from the corpus')


IDLE_S = 12.0  # seconds without requests before the idle memory is read (ingest workers exit after 10)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_data(out: Path, profile: Profile) -> Data:
    root = out / "data"
    t0 = time.perf_counter()
    data = Data(
        ct=build_ct(root, profile.ct_slices, "A"),
        ct_store1=build_ct(root, profile.ct_slices, "B"),
        ct_store4=build_ct(root, profile.ct_slices, "C"),
        corpus=build_corpus(root, profile.studies),
        # the corpus' UIDs derive from its study count: another count, other UIDs
        small=build_corpus(root, profile.small_studies + (profile.small_studies == profile.studies)),
    )
    # the harness's own freshly written files must not be flushed inside a server's measured
    # time: a server that makes its writes durable with syncfs(2) (ours) would pay for them
    os.sync()
    log(f"data ready in {time.perf_counter() - t0:.1f} s: CT {len(data.ct.files)} x 3, corpus "
        f"{profile.studies} studies / {len(data.corpus.files)} instances, small C-STORE set "
        f"{len(data.small.files) if data.small else 0} instances")
    return data


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def run_server(name: str, data: Data, profile: Profile, workdir: Path, scp_port: int,
               results: Results) -> None:
    """Every workload against one server; a failing workload becomes n/a, never a crash."""
    details = results.details[name]
    os.sync()  # start from a clean page cache: no earlier writer's dirty data to flush
    details["loadavg_before"] = os.getloadavg()
    all_keys = [k for k in ("stow_ips", "stow_mbps", "corpus_ips", "qido_p50", "qido_p95",
                            "metadata_p50", "frame_p50", "fps_1", "fps_8", "retrieve_mbps", "retrieve_first_mbps", *PIXEL_KEYS,
                            "cstore_1",
                            "cstore_4", "cfind_p50", "cmove_ips", "cget_ips", "cstore_small", "disk_ratio",
                            "disk_all_ratio", "pss_peak_mb", "rss_peak_mb",
                            "rss_idle_mb")]

    def phase(keys: list[str], label: str, fn: Callable[[], None]) -> bool:
        """Run one workload; if the server stopped under it, restart it and run it once more."""
        for attempt in (0, 1):
            log(f"{name}: {label}")
            try:
                fn()
                return True
            except Exception as exc:  # noqa: BLE001 - every failure becomes an n/a figure
                details.setdefault("errors", {})[label] = traceback.format_exc(limit=3)
                reason = _reason(exc)
                if attempt == 0 and not server.listening():
                    code = server.proc.poll()
                    results.notes.append(
                        f"{name}: server stopped answering during '{label}' (exit code {code}; "
                        f"its log says whether a signal stopped it); restarted on the same "
                        f"data and ran '{label}' again")
                    log(f"{name}: server gone during {label}; restarting")
                    try:
                        server.restart()
                        continue
                    except Exception as again:  # noqa: BLE001
                        reason = f"server stopped; restart failed: {_reason(again)}"
                results.fail(name, keys, reason)
                log(f"{name}: {label} failed: {reason}")
                return False
        return False

    try:
        server = Server(name, workdir, scp_port)
    except Exception as exc:  # noqa: BLE001
        results.fail(name, all_keys, f"server did not start: {_reason(exc)}")
        details["start_error"] = str(exc)[-3000:]
        log(f"{name}: did not start: {_reason(exc)}")
        return
    # the tree's PSS every 0.25 s: processes that exit before the end count, and pages two
    # processes share count once (the sum of VmHWM counts them in each; both are reported)
    sampler = PeakSampler(lambda: server.proc.pid)
    try:
        def do_stow() -> None:
            r = stow.stow(server.dicomweb_url, data.ct.files, clients=4, per_request=10)
            details["stow"] = r
            results.set(name, "stow_ips", r["instances_per_s"])
            results.set(name, "stow_mbps", r["mb_per_s"])

        def do_disk() -> None:
            time.sleep(1.0)  # let a write-behind settle before du
            used = server.disk_bytes()
            details["disk"] = {"bytes": used, "input_bytes": data.ct.total_bytes,
                               "path": str(server.data_dir)}
            results.set(name, "disk_ratio", used / data.ct.total_bytes)

        stored_ct: tuple[Path, ...] = ()
        if phase(["stow_ips", "stow_mbps"], "STOW-RS CT", do_stow):
            stored_ct = data.ct.files
            phase(["disk_ratio"], "disk usage", do_disk)
        else:
            results.fail(name, ["disk_ratio", "metadata_p50", "frame_p50", "fps_1", "fps_8", "retrieve_mbps", "retrieve_first_mbps",
                                *PIXEL_KEYS, "cmove_ips", "cget_ips"], "CT study not stored")

        corpus = data.corpus

        def do_corpus() -> None:
            nonlocal corpus
            r = stow.stow(server.dicomweb_url, data.corpus.files, clients=4, per_request=50,
                         deadline_s=profile.corpus_seconds, allow_partial=True)
            sent = set(r.pop("sent"))
            results.set(name, "corpus_ips", r["instances_per_s"])
            if r["truncated"]:
                # Too slow to load it all in time: finish the studies begun, query those.
                corpus, missing = corpus_subset(data.corpus, sent)
                if missing:
                    stow.stow(server.dicomweb_url, missing, clients=1, per_request=50)
                r["studies_loaded"] = len(corpus.studies)
                results.notes.append(
                    f"{name}: corpus load stopped after {profile.corpus_seconds:.0f} s; QIDO and "
                    f"C-FIND ran over {len(corpus.studies)} of {len(data.corpus.studies)} studies")
            details["corpus_load"] = r

        corpus_ok = phase(["corpus_ips"], f"STOW-RS corpus ({len(data.corpus.files)} instances)",
                          do_corpus)
        if not corpus_ok:
            results.fail(name, ["qido_p50", "qido_p95", "cfind_p50"], "corpus not stored")

        def do_qido() -> None:
            r = qido.qido(server.dicomweb_url, qido.qido_queries(corpus, profile.qido_queries))
            details["qido"] = r
            results.set(name, "qido_p50", r["p50_ms"])
            results.set(name, "qido_p95", r["p95_ms"])

        if corpus_ok:
            phase(["qido_p50", "qido_p95"], "QIDO-RS", do_qido)

        def do_metadata() -> None:
            r = wado.series_metadata(server.dicomweb_url, data.ct, profile.metadata_runs)
            details["metadata"] = r
            results.set(name, "metadata_p50", r["p50_ms"])

        def do_frames() -> None:
            r = wado.frames(server.dicomweb_url, data.ct, profile.frame_latency_requests, profile.frame_seconds,
                           throughput_requests=profile.frame_requests)
            details["frames"] = r
            results.set(name, "frame_p50", r["p50_ms"])
            results.set(name, "fps_1", r["fps_1"])
            results.set(name, "fps_8", r["fps_8"])

        def do_retrieve() -> None:
            r = wado.series_retrieve(server.dicomweb_url, data.ct, profile.retrieve_runs)
            details["series retrieve"] = r
            results.set(name, "retrieve_mbps", r["mbps"])
            results.set(name, "retrieve_first_mbps", r["all_mbps"][0])

        phase(["metadata_p50"], "series metadata", do_metadata)
        phase(["frame_p50", "fps_1", "fps_8"], "WADO-RS frames", do_frames)
        phase(["retrieve_mbps", "retrieve_first_mbps"], "WADO-RS series retrieve", do_retrieve)
        if "stow_ips" in results.values[name]:
            run_pixels(name, server, data, profile, results, phase)

        def do_cstore(key: str, ct: CtStudy, n: int) -> Callable[[], None]:
            def run() -> None:
                r = dimse.c_store(server.peer, ct.files[:profile.cstore_instances], associations=n)
                details[key] = r
                results.set(name, key, r["instances_per_s"])
            return run

        phase(["cstore_1"], "C-STORE, 1 association", do_cstore("cstore_1", data.ct_store1, 1))
        phase(["cstore_4"], "C-STORE, 4 associations", do_cstore("cstore_4", data.ct_store4, 4))

        def do_cfind() -> None:
            r = dimse.c_find(server.peer, dimse.c_find_queries(corpus, profile.find_queries))
            details["cfind"] = r
            results.set(name, "cfind_p50", r["p50_ms"])

        if corpus_ok:
            phase(["cfind_p50"], "C-FIND", do_cfind)

        def do_cmove() -> None:
            r = dimse.c_move(server.peer, data.ct)
            details["cmove"] = r
            results.set(name, "cmove_ips", r["instances_per_s"])

        def do_cget() -> None:
            r = dimse.c_get(server.peer, data.ct)
            details["cget"] = r
            results.set(name, "cget_ips", r["instances_per_s"])

        if "stow_ips" in results.values[name]:
            phase(["cmove_ips"], "C-MOVE", do_cmove)
            phase(["cget_ips"], "C-GET", do_cget)

        def do_small() -> None:
            assert data.small is not None
            r = dimse.c_store(server.peer, data.small.files, associations=4)
            details["cstore_small"] = r
            results.set(name, "cstore_small", r["instances_per_s"])

        # last: these studies share the corpus' patients, so C-FIND's expected counts hold before
        if data.small is not None:
            phase(["cstore_small"], f"C-STORE {len(data.small.files)} small instances, 4 associations",
                  do_small)

        def do_disk_all() -> None:
            time.sleep(1.0)  # let a write-behind settle before du
            sent = [*stored_ct, *corpus.files, *data.ct_store1.files[:profile.cstore_instances],
                    *data.ct_store4.files[:profile.cstore_instances], *(data.small.files if data.small else ())]
            size = sum(f.stat().st_size for f in sent)
            used = server.disk_bytes()
            details["disk_all"] = {"bytes": used, "input_bytes": size, "instances": len(sent)}
            results.set(name, "disk_all_ratio", used / size)

        if "cstore_small" in results.values[name] and corpus_ok:
            phase(["disk_all_ratio"], "disk usage, everything loaded", do_disk_all)
        else:
            results.fail(name, ["disk_all_ratio"], "not everything was loaded")

        time.sleep(IDLE_S)  # idle: what the server keeps between bursts of work
        memory = tree_memory(server.proc.pid)
        details["memory"] = {str(pid): m for pid, m in memory.items()}
        rss = tree_peak_rss(server.proc.pid)
        pss_peak = sampler.stop()
        if rss:
            results.set(name, "rss_peak_mb", rss / 2**20)
            results.set(name, "pss_peak_mb", max(pss_peak, sum(m["Pss"] for m in memory.values())) / 2**20)
            # PSS: worker processes share most pages with their forkserver; summing RSS counts
            # those pages once per process (Yunying's tree: 358 MB of RSS, 179 MB of PSS)
            results.set(name, "rss_idle_mb", sum(m["Pss"] or m["VmRSS"] for m in memory.values()) / 2**20)
            if server.restarts:
                results.notes.append(f"{name}: peak RSS is the restarted process's")
        else:
            results.fail(name, ["pss_peak_mb", "rss_peak_mb", "rss_idle_mb"], f"server exited ({server.proc.poll()})")
        details["loadavg_after"] = os.getloadavg()
        details["restarts"] = server.restarts
    finally:
        sampler.stop()
        server.stop()


PIXEL_KEYS = ("rendered_p50", "thumb_p50", "cine_seq_fps", "cine_par_fps", "ttfi_p50",
              "shaped_frame_ms", "shaped_rendered_ms", "shaped_kb", "shaped_floor_ms",
              "mpr_cold_ms", "mpr_p50")


def run_pixels(name: str, server: Server, data: Data, profile: Profile, results: Results,
               phase: Callable[[list[str], str, Callable[[], None]], bool]) -> None:
    """The viewer's pixel path (issue 4). MPR first, so its first request finds the volume
    cold; a feature the server lacks is n/a with the HTTP status it answered."""
    details = results.details[name]

    def step(keys: list[str], label: str, fn: Callable[[], dict[str, Any]],
             figures: dict[str, str]) -> None:
        def run() -> None:
            try:
                r = fn()
            except pixels.Unsupported as exc:
                results.fail(name, keys, str(exc))
                details.setdefault("unsupported", {})[label] = str(exc)
                return
            details[label] = r
            for key, field in figures.items():
                results.set(name, key, r[field])
        phase(keys, label, run)

    ct = data.ct

    def url() -> str:  # read at call time: a restarted server may listen elsewhere
        return server.dicomweb_url

    step(["mpr_cold_ms", "mpr_p50"], "MPR", lambda: pixels.mpr(url(), ct, profile.mpr_requests),
         {"mpr_cold_ms": "cold_ms", "mpr_p50": "p50_ms"})
    step(["rendered_p50"], "rendered frames",
         lambda: pixels.rendered(url(), ct, profile.rendered_requests), {"rendered_p50": "p50_ms"})
    step(["thumb_p50"], "thumbnails", lambda: pixels.thumbnails(url(), ct, profile.thumb_repeats),
         {"thumb_p50": "p50_ms"})
    step(["cine_seq_fps", "cine_par_fps"], "cine",
         lambda: pixels.cine(url(), ct, profile.cine_passes),
         {"cine_seq_fps": "fps_seq", "cine_par_fps": "fps_par"})
    step(["ttfi_p50"], "time to first image",
         lambda: pixels.first_image(url(), ct, profile.ttfi_runs), {"ttfi_p50": "p50_ms"})

    def shaped_link() -> dict[str, Any]:
        r = shaped_first_image(name, url(), server.headers, ct, profile.shaped_runs)
        return {**r, "frame_ms": r["frame"]["p50_ms"], "rendered_ms": r["rendered"]["p50_ms"],
                "kb": r["frame"]["down_bytes_p50"] / 1000}
    step(["shaped_frame_ms", "shaped_rendered_ms", "shaped_kb"], "first image over 4G poor", shaped_link,
         {"shaped_frame_ms": "frame_ms", "shaped_rendered_ms": "rendered_ms", "shaped_kb": "kb"})

    def shaped_floor() -> dict[str, Any]:
        r = replay_floor(url(), server.headers, ct, profile.shaped_runs)
        return {**r, "frame_ms": r["frame"]["p50_ms"]}
    step(["shaped_floor_ms"], "first image over 4G poor, answers replayed instantly", shaped_floor,
         {"shaped_floor_ms": "frame_ms"})


def run_import(data: Data, workdir: Path, results: Results) -> None:
    """`yunying import DIR` of the CT study into a fresh data directory, server stopped."""
    target_dir = workdir / "import-data"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "yunying.cli", "import", "--data", str(target_dir),
           str(data.ct.directory)]
    log("yunying: import " + " ".join(cmd[3:]))
    os.sync()  # the other server's unsynced writes are not the import's to flush
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, timeout=600,
                              check=False)
    except subprocess.TimeoutExpired:
        results.fail("yunying", ["import_ips"], "import took over 600 s")
        return
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        results.fail("yunying", ["import_ips"], f"exit {done.returncode}: {tail[0][:120]}")
        results.details["yunying"]["import_stderr"] = done.stderr.decode(errors="replace")[-3000:]
        return
    n = len(data.ct.files)
    results.details["yunying"]["import"] = {"instances": n, "seconds": elapsed,
                                            "note": "includes Python start-up"}
    results.set("yunying", "import_ips", n / elapsed)


def remove_in_background(run_dir: Path, parts: list[str]) -> None:
    """Delete the servers' data after the run: tens of thousands of small files can take
    minutes to unlink on a busy disk, which must not count against the run's time."""
    paths = [str(run_dir / p) for p in parts if (run_dir / p).exists()]
    if paths:
        proc = subprocess.Popen(["rm", "-rf", "--", *paths], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log(f"removing the servers' data in the background (pid {proc.pid}); --keep keeps it")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    who = p.add_mutually_exclusive_group()
    who.add_argument("--vs-orthanc", action="store_true",
                     help="run the same workload against a throwaway Orthanc too")
    who.add_argument("--only", choices=["yunying", "orthanc"], help="benchmark one server")
    p.add_argument("--quick", action="store_true", help="smaller corpus and shorter loops (<3 min)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out",
                   help="data cache, server directories and results (default benchmarks/out, "
                        "which git ignores)")
    p.add_argument("--studies", type=int, help="corpus size (default 5000, --quick 400)")
    p.add_argument("--corpus-seconds", type=float,
                   help="corpus load time limit per server (default 330, --quick 40)")
    p.add_argument("--keep", action="store_true", help="keep the servers' data directories")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the servers and storescp we
    # started are stopped by the `finally` blocks instead of being orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    profile = QUICK if args.quick else FULL
    if args.studies:
        profile = Profile(**{**profile.__dict__, "studies": args.studies})
    if args.corpus_seconds:
        profile = Profile(**{**profile.__dict__, "corpus_seconds": args.corpus_seconds})
    servers = [args.only] if args.only else (["yunying", "orthanc"] if args.vs_orthanc
                                            else ["yunying"])
    out: Path = args.out.resolve()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    started_at = time.perf_counter()
    results = Results(servers)
    data = build_data(out, profile)
    run_dir = out / "runs" / stamp
    scp_port = free_port()
    scp = dimse.StoreScp(scp_port, run_dir) if dimse.dcmtk_available() else None
    try:
        for name in servers:
            workdir = run_dir / name
            if name == "orthanc" and not orthanc_available():
                results.fail(name, [m for m in _all_keys()], "Orthanc is not installed")
                continue
            if name == "yunying" and not yunying_cli_available():
                results.fail(name, [m for m in _all_keys()], "yunying/cli.py does not exist")
                continue
            if scp is None:
                results.fail(name, ["cstore_1", "cstore_4", "cmove_ips"], "DCMTK not installed")
            run_server(name, data, profile, workdir, scp_port, results)
        if "yunying" in servers and yunying_cli_available():
            run_import(data, run_dir / "yunying", results)
        if "orthanc" in servers:
            results.fail("orthanc", ["import_ips"], "no equivalent command")
    finally:
        if scp is not None:
            scp.stop()
    meta: dict[str, Any] = {
        "started": stamp, "seconds": round(time.perf_counter() - started_at, 1),
        "profile": "quick" if args.quick else "full", **profile.__dict__,
        "ct_instances": len(data.ct.files), "ct_input_bytes": data.ct.total_bytes,
        "corpus_instances": len(data.corpus.files), "servers": servers,
        "git_commit": git_commit(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "host": platform.node(),
    }
    results.write_json(run_dir / "results.json", meta)
    results.write_json(out / "results.json", meta)
    if not args.keep:
        remove_in_background(run_dir, ["yunying/data", "yunying/import-data", "orthanc/storage"])
    print(results.table())
    print(f"\n{profile.studies} studies / {len(data.corpus.files)} corpus instances, CT "
          f"{len(data.ct.files)} x 512x512; {os.cpu_count()} CPUs; run took "
          f"{meta['seconds']} s; JSON: {out / 'results.json'}")
    for name in servers:
        before = results.details[name].get("loadavg_before")
        if before and before[0] > (os.cpu_count() or 1):
            results.notes.append(f"{name}: load average {before[0]:.1f} on {os.cpu_count()} CPUs "
                                 f"when it started: other work shared the machine")
    for note in results.notes:
        print(f"note: {note}")
    for name in servers:
        d = results.details[name]
        for label in ("qido", "cfind"):
            wrong = (d.get(label) or {}).get("wrong_counts")
            if wrong:
                print(f"warning: {name} {label} returned unexpected match counts: {wrong}")
    return 0


def _all_keys() -> list[str]:
    from benchmarks.report import METRICS
    return [m.key for m in METRICS]
