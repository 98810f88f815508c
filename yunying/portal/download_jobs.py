"""Portal downloads of big studies, made in the background with progress the page polls.

A 2000-image CT is an ordinary exam; its ZIP (every original deflated and AES-encrypted, and the
JPEGs) takes tens of seconds of CPU, longer than a request should be held open on a phone link.
So a study of more than SYNC_LIMIT instances (or any when the caller asks) is made by a thread
here: the POST answers 202 at once with the id and the password, the page polls the progress and
fetches the ZIP when it is ready. At most WORKERS are made at a time (the archive's cores serve
the viewers too); the others wait in state "queued". The ZIP itself is recorded in the store as
every download is (yunying.portal.downloads): a job forgotten by a restart only loses its
progress, and a finished one is still found from its row.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yunying import jobs
from yunying.archive import Archive
from yunying.auth.errors import Conflict
from yunying.auth.store import Store
from yunying.portal import downloads

log = logging.getLogger("yunying.portal.downloads")

SYNC_LIMIT = 300  # instances: up to this many the ZIP is made within the request (a few seconds)
WORKERS = 1
KEEP = 3600  # seconds a finished job's progress stays in memory (the ZIP's row stays DOWNLOAD_TTL)


@dataclass
class Job:
    account: str
    study: str
    total: int
    done: int = 0
    state: str = "queued"  # queued | running | ready | failed
    error: str = ""
    finished: float = 0.0
    size: int = 0
    expires_at: int = 0

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "done": self.done, "total": self.total}
        if self.state == "ready":
            out |= {"size": self.size, "expires_at": self.expires_at}
        if self.error:
            out["error"] = self.error
        return out


class DownloadJobs:
    """The background downloads of one server process."""

    def __init__(self, store: Store, archive: Archive, data: Path) -> None:
        self.store, self.archive, self.data = store, archive, Path(data)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(WORKERS)
        self._made = self._failed = 0
        jobs.register("portal_downloads", self.status)

    def start(self, account: str, study: str, contents: str, background: bool) -> tuple[int, dict[str, Any]]:
        """(201, the ZIP made now) for a small study, else (202, its id, password and progress)."""
        rows = downloads.plan(self.store, self.archive, self.data, study, contents)
        if not background and len(rows) <= SYNC_LIMIT:
            zip_id, password = downloads.new_zip()
            return 201, downloads.build(self.store, self.archive, self.data, account, study, contents,
                                        rows, zip_id, password)
        zip_id, password = downloads.new_zip()
        job = Job(account, study, downloads.steps(rows, contents))
        with self._lock:
            self._forget_old()
            self._jobs[zip_id] = job
        threading.Thread(target=self._run, args=(zip_id, job, contents, rows, password),
                         name="portal-download", daemon=True).start()
        return 202, {"id": zip_id, "password": password} | job.view()

    def _run(self, zip_id: str, job: Job, contents: str, rows: list[Any], password: str) -> None:
        def step() -> None:
            job.done += 1  # one writer (this thread); readers see a whole int

        with self._slots:
            job.state = "running"
            try:
                made = downloads.build(self.store, self.archive, self.data, job.account, job.study, contents,
                                       rows, zip_id, password, step)
            except Exception as exc:  # the page says it failed; the log says why (no patient data in it)
                log.exception("portal download %s failed", zip_id[:8])
                job.state, job.error, job.finished = "failed", type(exc).__name__, time.time()
                self._failed += 1
                return
        job.size, job.expires_at, job.done = made["size"], made["expires_at"], job.total
        job.state, job.finished = "ready", time.time()
        self._made += 1

    def progress(self, account: str, zip_id: str, studies: frozenset[str]) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(zip_id)
        if job is not None and job.account == account and job.study in studies:
            return job.view()
        row = downloads.made(self.store, account, zip_id, studies)  # made before a restart, or not in the background
        return {"state": "ready", "done": 1, "total": 1, "size": row.size, "expires_at": row.expires_at}

    def require_ready(self, account: str, zip_id: str) -> None:
        """Refuse a ZIP still being made (its file does not exist yet) with a reason."""
        with self._lock:
            job = self._jobs.get(zip_id)
        if job is not None and job.account == account and job.state in ("queued", "running"):
            raise Conflict("the ZIP is still being made: poll its progress")

    def _forget_old(self) -> None:
        old = time.time() - KEEP
        for zip_id in [k for k, j in self._jobs.items() if j.finished and j.finished < old]:
            del self._jobs[zip_id]

    def status(self) -> list[jobs.JobStatus]:
        with self._lock:
            states = [j.state for j in self._jobs.values()]
        return [{"kind": "portal_downloads", "name": "zip", "schedule": "on demand",
                 "state": "running" if "running" in states else "idle",
                 "counts": {"queued": states.count("queued"), "running": states.count("running"),
                            "made_total": self._made, "failed_total": self._failed}}]

