"""A real Yunying server collecting from real source PACS (a pynetdicom SCP, Orthanc)."""
from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx

from benchmarks.collect import SyntheticPacs
from benchmarks.net import YunyingServer, free_port, start_yunying

READER = "ak_reader_" + secrets.token_urlsafe(16)  # dicomweb.read only: no jobs, no collector runs


def source(name: str, aet: str, port: int, **more: Any) -> dict[str, Any]:
    """A [[collect_sources]] table for 127.0.0.1."""
    return {"name": name, "aet": aet, "host": "127.0.0.1", "port": port, "timeout": 10, **more}


def start_collecting(data: Path, sources: list[dict[str, Any]], peers: dict[str, int] | None = None,
                     pacs: Sequence[SyntheticPacs] = (), dimse_port: int | None = None,
                     **env: str) -> YunyingServer:
    """A server whose collectors use `sources`; every PACS learns where our AE listens (C-MOVE)."""
    keys = json.dumps([{"name": "reader", "key": READER, "scopes": ["dicomweb.read"]}])
    if peers:  # the sources' AEs may store into us (C-MOVE sub-operations arrive through our SCP)
        env["YUNYING_PEERS"] = json.dumps({ae: ["127.0.0.1", port] for ae, port in peers.items()})
    env.update(YUNYING_COLLECT_SOURCES=json.dumps(sources), YUNYING_API_KEYS=keys)
    with patch.dict(os.environ, env):  # start_yunying hands the environment to the server
        srv = start_yunying(data, dimse_port=dimse_port or free_port())
    for p in pacs:
        p.destinations["YUNYING"] = ("127.0.0.1", srv.dimse_port)
    return srv


def api(srv: YunyingServer) -> httpx.Client:
    return httpx.Client(base_url=srv.http_url, headers=srv.headers, timeout=60, trust_env=False)


def job(srv: YunyingServer, name: str) -> dict[str, Any]:
    with api(srv) as c:
        jobs = c.get("/api/jobs").json()["jobs"]
    return next(j for j in jobs if j["kind"] == "collect" and j["name"] == name)


def run(srv: YunyingServer, name: str, *, timeout: float = 120, **body: str) -> dict[str, Any]:
    """Start a run over the API and wait until it ends; returns its row from /api/collect/runs."""
    with api(srv) as c:
        before = c.get("/api/collect/runs", params={"source": name}).json()["runs"]
        r = c.post(f"/api/collect/sources/{name}/runs", json=body)
        assert r.status_code == 202, r.text
        return wait_run(c, name, {x["id"] for x in before}, timeout)


def wait_run(c: httpx.Client, name: str, known: set[int], timeout: float = 120,
             until: Callable[[dict[str, Any]], bool] = lambda r: r["state"] != "running") -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in c.get("/api/collect/runs", params={"source": name}).json()["runs"] if r["id"] not in known]
        if runs and until(runs[0]):
            return runs[0]
        time.sleep(0.2)
    raise AssertionError(f"no finished run of {name} within {timeout} s")


def study_counts(srv: YunyingServer) -> dict[str, int]:
    """Study UID -> instances we hold (QIDO-RS)."""
    with api(srv) as c:
        r = c.get("/dicomweb/studies", params={"includefield": "00201208", "limit": "10000"})
    assert r.status_code in (200, 204), r.text
    return {s["0020000D"]["Value"][0]: int(s["00201208"]["Value"][0]) for s in (r.json() if r.content else [])}
