"""`yunying routing ...` as a subprocess on the data folder of a running server: rules added,
switched and deleted, queue items retried and dropped, sending paused and resumed; the server
follows what the command changed in the store."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from benchmarks.net import REPO_ROOT, YunyingServer
from tests.dicomweb.helpers import make_ct
from tests.routing.peers import FlakyScp, wait_for
from tests.routing.test_routing import (
    c_store,
    start,
)


def routing(srv: YunyingServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "yunying.cli", "routing", *args, "--data", str(srv.data_dir)],
                          capture_output=True, text=True, env=env, timeout=120, cwd=REPO_ROOT, check=False)


def as_json(srv: YunyingServer, *args: str) -> object:
    done = routing(srv, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start(tmp_path_factory.mktemp("routing-cli") / "data")
    yield s
    s.stop()


def server_knows(srv: YunyingServer, name: str, state: str | None = None) -> bool:
    jobs = httpx.get(srv.http_url + "/api/routing/jobs", headers=srv.headers).json()  # the server's memory
    return any(j["name"] == name and (state is None or j["state"] == state) for j in jobs)


def items(srv: YunyingServer, rule: str, state: str = "") -> list[dict]:
    rows = as_json(srv, "queue", "--rule", rule, *(["--state", state] if state else []))
    assert isinstance(rows, list)
    return rows


def test_rules_and_queue_items_from_the_command_line(srv: YunyingServer, flaky: FlakyScp) -> None:
    done = routing(srv, "add", "cli-us", "--aet", "FLAKY", "--host", "127.0.0.1", "--port", str(flaky.port),
                   "--timeout", "2", "--modality", "US")
    assert done.returncode == 0 and "cli-us: enabled" in done.stdout, done.stderr
    assert wait_for(lambda: server_knows(srv, "cli-us"), 15)
    kept, given_up = make_ct(modality="US", number=1), make_ct(modality="US", number=2)
    c_store(srv, [kept, given_up])
    assert wait_for(lambda: len(items(srv, "cli-us", "failed")) == 2, 60), items(srv, "cli-us")
    ids = {r["sop"]: r["id"] for r in items(srv, "cli-us")}
    assert as_json(srv, "drop", str(ids[given_up.SOPInstanceUID])) == {"dropped": 1}
    flaky.mode = "accept"
    assert as_json(srv, "retry", str(ids[kept.SOPInstanceUID])) == {"retried": 1}
    assert wait_for(lambda: [r["state"] for r in items(srv, "cli-us")] != ["failed", "dropped"]
                    and {r["state"] for r in items(srv, "cli-us")} == {"done", "dropped"}, 30), items(srv, "cli-us")
    assert kept.SOPInstanceUID in flaky.received and given_up.SOPInstanceUID not in flaky.received
    listed = routing(srv, "rules")
    assert "cli-us" in listed.stdout and "FLAKY@127.0.0.1" in listed.stdout
    # a delivered item is not sent again by mistake; unknown ones are named; the store is unchanged
    again = routing(srv, "retry", str(ids[kept.SOPInstanceUID]))
    assert again.returncode == 1 and "already delivered" in again.stderr
    unknown = routing(srv, "drop", "999999")
    assert unknown.returncode == 1 and "999999" in unknown.stderr
    assert {r["state"] for r in items(srv, "cli-us")} == {"done", "dropped"}


def test_pause_holds_sending_and_resume_sends(srv: YunyingServer, flaky: FlakyScp) -> None:
    flaky.mode = "accept"
    assert routing(srv, "add", "cli-mg", "--aet", "FLAKY", "--host", "127.0.0.1", "--port", str(flaky.port),
                   "--modality", "MG").returncode == 0
    assert wait_for(lambda: server_knows(srv, "cli-mg"), 15)
    assert as_json(srv, "pause") == {"paused": True}
    assert wait_for(lambda: server_knows(srv, "cli-mg", "disabled"), 15)  # the server saw the switch
    held = make_ct(modality="MG")
    c_store(srv, [held])
    time.sleep(3)  # longer than the sender's idle pass
    assert [r["state"] for r in items(srv, "cli-mg")] == ["pending"]  # queued, not sent
    assert held.SOPInstanceUID not in flaky.received
    assert httpx.get(srv.http_url + "/api/routing/paused", headers=srv.headers).json() == {"paused": True}
    assert as_json(srv, "resume") == {"paused": False}
    assert wait_for(lambda: [r["state"] for r in items(srv, "cli-mg")] == ["done"], 30), items(srv, "cli-mg")
    assert held.SOPInstanceUID in flaky.received


def test_disable_enable_delete_and_bad_input(srv: YunyingServer) -> None:
    assert routing(srv, "add", "cli-web", "--url", "http://127.0.0.1:9/dicom-web", "--disabled").returncode == 0
    assert "cli-web: enabled" in routing(srv, "enable", "cli-web").stdout
    assert "cli-web: disabled" in routing(srv, "disable", "cli-web").stdout
    before = as_json(srv, "rules")
    bad = routing(srv, "add", "bad", "--aet", "A\\B", "--host", "h", "--port", "104")
    assert bad.returncode == 2 and "destination.aet" in bad.stderr
    taken = routing(srv, "add", "cli-web", "--url", "http://h")
    assert taken.returncode == 1 and "exists" in taken.stderr
    assert routing(srv, "queue", "--state", "lost").returncode == 2
    assert as_json(srv, "rules") == before
    assert routing(srv, "delete", "cli-web").returncode == 0
    gone = routing(srv, "delete", "cli-web")
    assert gone.returncode == 1 and "unknown" in gone.stderr
    assert wait_for(lambda: not server_knows(srv, "cli-web"), 15)


def test_queue_items_over_the_api(srv: YunyingServer) -> None:
    base = srv.http_url + "/api/routing"
    with httpx.Client(base_url=base, headers=srv.headers) as c:
        done = [r for r in c.get("/queue", params={"state": "done"}).json()]
        assert done
        assert c.post("/queue/retry", json={"items": [done[0]["id"]]}).status_code == 409
        assert c.post("/queue/drop", json={"items": [10**8]}).status_code == 404
        assert c.post("/queue/drop", json={"items": "1"}).status_code == 400
        assert c.post("/queue/retry", json={"items": [True]}).status_code == 400
        assert c.get("/queue", params={"state": "done"}).json() == done
    assert httpx.post(base + "/queue/retry", json={"items": [1]}).status_code == 401
    assert httpx.post(base + "/pause").status_code == 401
