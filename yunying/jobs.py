"""The jobs registry: every background job of the archive, in one list (issue 15 part 8).

Any subsystem that runs work in the background (Q/R collectors, database and HL7 collectors,
the routing queue, the delivery-cache purge ...) registers ONE provider: a callable, cheap
and thread-safe, that returns the current status of each of its jobs::

    from yunying import jobs

    def my_jobs() -> list[jobs.JobStatus]:
        return [{
            "kind": "hl7",                  # the subsystem; [a-z0-9_], the metric prefix
            "name": "mllp:2575",            # unique within the kind; no patient data
            "schedule": "listening",        # cron text, "on demand", "continuous" ... ("" if none)
            "last_run": 1765090000.0,       # Unix seconds of the last start, or None
            "next_run": None,               # Unix seconds of the next scheduled start, or None
            "state": "idle",                # idle | running | failed | disabled
            "counts": {"messages_total": 120, "queued": 3},   # numbers only
            "errors": ["AR: unknown event Z99"],               # the last few, newest last; no PHI
        }]

    jobs.register("hl7", my_jobs)   # again with the same key replaces it (tests, restarts)

The jobs API (`GET /api/jobs`), the jobs page (`/jobs/`) and `GET /metrics` list everything
registered. In the metrics each count becomes `yunying_<kind>_<key>{name="..."}`; a key ending
in `_total` is a counter (cumulative since the process started: rates come from it), any other
key a gauge (a queue length, a backlog). A provider that raises is reported as one job in
state "failed" instead of hiding the others.
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("yunying.jobs")

JobStatus = dict[str, Any]
Provider = Callable[[], list[JobStatus]]
FIELDS = ("kind", "name", "schedule", "last_run", "next_run", "state", "counts", "errors")
STATES = frozenset({"idle", "running", "failed", "disabled"})
ALIASES = {"sending": "running", "listening": "running", "busy": "running", "failing": "failed", "error": "failed",
           "off": "disabled"}  # words providers used before the contract; anything else unknown is "failed"

_providers: dict[str, Provider] = {}
_lock = threading.Lock()


def register(key: str, provider: Provider) -> None:
    """Add (or replace) the provider registered under `key`."""
    with _lock:
        _providers[key] = provider


def unregister(key: str) -> None:
    """Remove a provider (no error when absent)."""
    with _lock:
        _providers.pop(key, None)


def normalise(job: JobStatus) -> JobStatus:
    """A status with every field of the contract, defaults filled in."""
    out: JobStatus = {"kind": "", "name": "", "schedule": "", "last_run": None, "next_run": None,
                      "state": "idle", "counts": {}, "errors": []}
    out.update(job)  # a provider may add details (a source's address, a run's progress)
    out["state"] = ALIASES.get(out["state"], out["state"])
    if out["state"] not in STATES:
        out["state"] = "failed"
    out["counts"] = {str(k): v for k, v in dict(out["counts"] or {}).items() if isinstance(v, (int, float))}
    out["errors"] = [str(e) for e in list(out["errors"] or [])][-20:]
    return out


def all_jobs() -> list[JobStatus]:
    """Every registered job, sorted by kind then name."""
    with _lock:
        providers = list(_providers.items())
    out: list[JobStatus] = []
    for key, provider in providers:
        try:
            out.extend(normalise(job) for job in provider())
        except Exception as exc:  # noqa: BLE001 - one broken provider must not hide the others
            log.warning("jobs provider %s failed: %s", key, type(exc).__name__)
            out.append(normalise({"kind": key, "name": key, "state": "failed",
                                  "errors": [f"status unavailable: {type(exc).__name__}"]}))
    return sorted(out, key=lambda j: (j["kind"], j["name"]))


_METRIC = re.compile(r"[^a-zA-Z0-9_]")


def _metric_name(*parts: str) -> str:
    return "_".join(_METRIC.sub("_", p) for p in parts if p)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(jobs: list[JobStatus] | None = None) -> str:
    """The Prometheus text exposition format (version 0.0.4) of every job's counts."""
    jobs = all_jobs() if jobs is None else jobs
    series: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}

    def add(name: str, kind: str, labels: str, value: float) -> None:
        kinds[name] = kind
        text = str(int(value)) if float(value).is_integer() else repr(float(value))  # no rounding of timestamps
        series.setdefault(name, []).append(f"{name}{{{labels}}} {text}")

    for job in jobs:
        labels = f'kind="{_label(job["kind"])}",name="{_label(job["name"])}"'
        add("yunying_job_running", "gauge", labels, 1 if job["state"] == "running" else 0)
        add("yunying_job_failed", "gauge", labels, 1 if job["state"] == "failed" else 0)
        if job["last_run"] is not None:
            add("yunying_job_last_run_timestamp_seconds", "gauge", labels, float(job["last_run"]))
        for key, value in job["counts"].items():
            add(_metric_name("yunying", job["kind"], key), "counter" if key.endswith("_total") else "gauge",
                labels, float(value))
    lines: list[str] = []
    for name in sorted(series):
        lines.append(f"# TYPE {name} {kinds[name]}")
        lines.extend(series[name])
    return "\n".join(lines) + "\n"
