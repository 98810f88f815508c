"""The background download jobs in process (yunying.portal.download_jobs): a ZIP still being made
is refused with 409 and a reason, a failed build says so without patient data, the job shows in
the jobs registry, and only the account that asked sees a job's progress."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from yunying import jobs
from yunying.auth.errors import Conflict, NotFound
from yunying.portal import download_jobs, downloads


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Builds wait for the event, then fail when told to: the store and archive are never touched."""
    release = threading.Event()
    rows = [object()] * 5
    monkeypatch.setattr(downloads, "plan", lambda *a: rows)

    def build(*args: Any, **kw: Any) -> dict[str, Any]:
        step = args[-1]
        for _ in rows:
            step()
        release.wait(30)
        if getattr(release, "fail", False):
            raise OSError("disk full")
        return {"size": 123, "expires_at": int(time.time()) + 60}

    def no_row(*args: Any) -> None:
        raise NotFound("unknown or expired download")

    monkeypatch.setattr(downloads, "build", build)
    monkeypatch.setattr(downloads, "made", no_row)  # no ZIP recorded in a store
    yield release
    jobs.unregister("portal_downloads")


def wait_for(made: download_jobs.DownloadJobs, zip_id: str, state: str) -> dict[str, Any]:
    for _ in range(300):
        view = made.progress("p_a", zip_id, frozenset({"1.2"}))
        if view["state"] == state:
            return view
        time.sleep(0.02)
    raise AssertionError(view)


def test_a_zip_being_made_is_refused_then_served(gate: threading.Event, tmp_path: Path) -> None:
    made = download_jobs.DownloadJobs(None, None, tmp_path)  # type: ignore[arg-type]
    status, job = made.start("p_a", "1.2", "dicom", background=True)
    assert status == 202 and job["total"] == 5
    running = wait_for(made, job["id"], "running")
    assert running["done"] == 5
    with pytest.raises(Conflict, match="still being made"):
        made.require_ready("p_a", job["id"])
    with pytest.raises(NotFound):  # another account's job
        made.progress("p_b", job["id"], frozenset({"1.2"}))
    assert next(j for j in jobs.all_jobs() if j["kind"] == "portal_downloads")["counts"]["running"] == 1
    gate.set()
    assert wait_for(made, job["id"], "ready") == {"state": "ready", "done": 5, "total": 5, "size": 123,
                                                  "expires_at": pytest.approx(time.time() + 60, abs=5)}
    made.require_ready("p_a", job["id"])  # no refusal: the file is there


def test_a_failed_build_says_so_without_details(gate: threading.Event, tmp_path: Path) -> None:
    made = download_jobs.DownloadJobs(None, None, tmp_path)  # type: ignore[arg-type]
    gate.fail = True  # type: ignore[attr-defined]
    gate.set()
    _, job = made.start("p_a", "1.2", "both", background=True)
    failed = wait_for(made, job["id"], "failed")
    assert failed["error"] == "OSError" and "disk" not in str(failed)
    assert next(j for j in jobs.all_jobs() if j["kind"] == "portal_downloads")["counts"]["failed_total"] == 1
