"""`yunying collect ...` (talks to a running archive over its API) and the composition of the
collectors and the lifecycle inside `yunying serve` (the one place that wires in the DIMSE
side: the yunying package never imports a face elsewhere)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from yunying.archive import Archive
    from yunying.collect.service import CollectService
    from yunying.lifecycle.cache import Lifecycle
    from yunying.settings import Settings


def start(settings: Settings, archive: Archive, engine: Engine) -> tuple[CollectService | None, Lifecycle]:
    """Start the collectors (if any source is configured) and the lifecycle; stop both at exit."""
    import yunying.collect.state
    import yunying.lifecycle.studies  # noqa: F401 - and the "lifecycle" ones
    from dimse.collect_scu import DimseQueryRetrieve
    from yunying.auth.store import Store
    from yunying.collect.service import start_service
    from yunying.lifecycle.cache import Lifecycle

    Store(engine, None).migrate()
    lifecycle = Lifecycle(settings, archive, engine)
    service = start_service(settings, DimseQueryRetrieve(settings.aet), archive, engine, held=lifecycle.held)
    return service, lifecycle.start(service)


# -- the command line ----------------------------------------------------------------------
def _client(args: argparse.Namespace) -> Any:
    import httpx

    token = args.token or os.environ.get("YUNYING_TOKEN") or os.environ.get("YUNYING_API_KEY", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=args.url.rstrip("/"), headers=headers, timeout=30, trust_env=False)


def _fail(response: Any) -> int:
    try:
        reason = response.json().get("error", response.text)
    except ValueError:
        reason = response.text
    print(f"yunying collect: {response.status_code} {reason}", file=sys.stderr)
    return 1


def _show(job: dict[str, Any]) -> str:
    counts = job["counts"]
    last = time.strftime("%Y-%m-%d %H:%M", time.localtime(job["last_run"])) if job["last_run"] else "never"
    nxt = time.strftime("%Y-%m-%d %H:%M", time.localtime(job["next_run"])) if job["next_run"] else "-"
    progress = job.get("progress") or {}
    now = ""
    if progress:
        c = progress.get("counts", {})
        now = (f" | {progress['kind']} {progress.get('window', '')}: {c.get('studies_found', 0)} studies found, "
               f"{c.get('instances_fetched', 0)} instances fetched")
    backfill = f" | backfill next {job['backfill_next']}" if job.get("backfill_next") else ""
    return (f"{job['name']}: {job['state']}, last {last}, next {nxt}, {counts.get('instances_total', 0)} instances, "
            f"{counts.get('errors_total', 0)} errors{now}{backfill}")


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.get("/api/jobs")
        if response.status_code != 200:
            return _fail(response)
        for job in response.json()["jobs"]:
            if args.all or job["kind"] == "collect":
                print(_show(job) if job["kind"] == "collect" else f"{job['kind']}/{job['name']}: {job['state']}")
                for error in job["errors"][-args.errors:] if args.errors else []:
                    print(f"  error: {error}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"kind": args.kind}
    for key in ("until", "start", "patient_id", "accession", "study"):
        if getattr(args, key, None):
            body[key] = getattr(args, key)
    with _client(args) as client:
        response = client.post(f"/api/collect/sources/{args.source}/runs", json=body)
        if response.status_code != 202:
            return _fail(response)
        print(f"{args.source}: {args.kind} started")
        if not args.wait:
            return 0
        time.sleep(0.5)
        while True:  # until the source's job is no longer running
            jobs = client.get("/api/jobs").json()["jobs"]
            job = next(j for j in jobs if j["kind"] == "collect" and j["name"] == args.source)
            print(_show(job), flush=True)
            if job["state"] != "running":
                return 0 if job["state"] != "failed" else 1
            time.sleep(2)


def add_parser(sub: Any) -> None:
    """`yunying collect status|sync|backfill|refresh`."""
    collect = sub.add_parser("collect", help="Q/R collectors of a running archive (status, runs)")
    csub = collect.add_subparsers(dest="collect_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=os.environ.get("YUNYING_URL", "http://127.0.0.1:8080"),
                       help="the archive (default $YUNYING_URL or http://127.0.0.1:8080)")
        p.add_argument("--token", help="bearer token or API key (default $YUNYING_TOKEN or $YUNYING_API_KEY)")

    status = csub.add_parser("status", help="each source: state, last and next run, counts, progress")
    common(status)
    status.add_argument("--all", action="store_true", help="every job, not only the collectors")
    status.add_argument("--errors", type=int, default=3, help="show the last N errors of each (default 3)")
    status.set_defaults(func=cmd_status)
    for kind, text in (("sync", "collect today's window now"), ("backfill", "walk back from the checkpoint"),
                       ("refresh", "fetch one patient's, accession's or study's images now")):
        p = csub.add_parser(kind, help=text)
        common(p)
        p.add_argument("source", help="the source's name ([[collect_sources]] name)")
        p.add_argument("--wait", action="store_true", help="follow the run's progress until it ends")
        if kind == "backfill":
            p.add_argument("--until", help="oldest day (YYYY-MM-DD); a new backfill (else: resume)")
            p.add_argument("--start", help="newest day (YYYY-MM-DD, default yesterday)")
        if kind == "refresh":
            p.add_argument("--patient-id", dest="patient_id")
            p.add_argument("--accession")
            p.add_argument("--study")
        p.set_defaults(func=cmd_run, kind=kind)
