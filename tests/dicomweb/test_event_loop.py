"""Issue 10 part 7: nothing blocks the event loop. A watchdog coroutine measures the loop's lag
while requests wait for a slow index commit (read-your-writes makes them wait for it)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from dicomweb.app import build_app
from index.model import Origin
from tests.dicomweb.helpers import make_ct, multipart, part10
from yunying.archive import Archive
from yunying.settings import Settings

SLOW_COMMIT_S = 0.8
SLOW_WRITE_S = 0.3
KEY = "yk_looptest_" + "x" * 24


async def _watch(stop: asyncio.Event, lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.005)
        lags.append(loop.time() - before - 0.005)


async def _while_committing(archive: Archive, app: Starlette, path: str, accept: str) -> tuple[httpx.Response, float]:
    ds = make_ct()
    await asyncio.to_thread(archive.store, part10(ds), Origin("import", "test"), None, False)  # committed later
    stop, lags = asyncio.Event(), list[float]()
    watcher = asyncio.create_task(_watch(stop, lags))
    url = path.format(study=ds.StudyInstanceUID, series=ds.SeriesInstanceUID, sop=ds.SOPInstanceUID)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://archive") as client:
        resp = await client.get(url, headers={"Authorization": f"Bearer {KEY}", "Accept": accept})
    stop.set()
    await watcher
    return resp, max(lags)


@pytest.mark.parametrize("path, accept", [
    ("/dicomweb/studies/{study}/series/{series}/metadata", "application/dicom+json"),
    ("/dicomweb/studies/{study}/metadata", "application/dicom+json"),
    ("/dicomweb/studies/{study}", 'multipart/related; type="application/octet-stream"'),
    ("/dicomweb/studies/{study}/series", "application/dicom+json"),  # QIDO reads its writes too
    ("/dicomweb/instances?SOPInstanceUID={sop}", "application/dicom+json"),
    ("/dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered", "image/png"),
])
def test_requests_waiting_for_a_slow_commit_leave_the_loop_free(tmp_path: Path, path: str, accept: str) -> None:
    archive = Archive(tmp_path / "data")
    commit = archive._commit

    def slow_commit(batch: list) -> None:  # a slow disk under the index
        time.sleep(SLOW_COMMIT_S)
        commit(batch)

    archive._commit = slow_commit  # type: ignore[method-assign]  # a slow commit, for this archive only
    try:
        app = build_app(archive, Settings(data=tmp_path / "data", api_key=KEY))
        resp, lag = asyncio.run(_while_committing(archive, app, path, accept))
        assert resp.status_code == 200, resp.text
        assert resp.content and resp.content != b"[]"  # it waited for the commit, and found the instance
        assert lag < SLOW_COMMIT_S / 2, f"the event loop stood still {lag:.2f} s"
    finally:
        archive.close()


def test_stow_parts_are_parsed_and_spooled_off_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A STOW body whose parts go to spool files on a slow disk: the loop keeps turning. Every
    disk spool write takes SLOW_WRITE_S, so spooling to disk on the loop shows as that much lag
    (splitting and writes to the memory folder do run on the loop: memory copies)."""
    from dicomweb import stow_spool

    write_each, writes = stow_spool.write_each, list[int]()

    def slow_write(fd: int, chunks: list[bytes | memoryview]) -> None:  # a slow disk under the spool folder
        writes.append(fd)
        time.sleep(SLOW_WRITE_S)
        write_each(fd, chunks)

    monkeypatch.setattr(stow_spool, "write_each", slow_write)
    monkeypatch.setattr(stow_spool, "SPOOL_MAX", 1 << 20)  # every part goes to a spool file
    archive = Archive(tmp_path / "data")
    try:
        app = build_app(archive, Settings(data=tmp_path / "data", api_key=KEY))
        sent = [make_ct(rows=512, cols=512, frames=2, number=i) for i in range(4)]
        body, ctype = multipart(*(part10(ds) for ds in sent))

        async def run() -> tuple[httpx.Response, list[float]]:
            stop, lags = asyncio.Event(), list[float]()
            watcher = asyncio.create_task(_watch(stop, lags))

            async def chunks() -> AsyncIterator[bytes]:
                for i in range(0, len(body), 1 << 20):
                    yield body[i:i + (1 << 20)]

            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://archive") as c:
                resp = await c.post("/dicomweb/studies", content=chunks(), timeout=120,
                                    headers={"Authorization": f"Bearer {KEY}", "Content-Type": ctype})
            stop.set()
            await watcher
            return resp, lags

        resp, lags = asyncio.run(run())
        assert resp.status_code == 200, resp.text
        stored = {item["00081155"]["Value"][0] for item in resp.json()["00081199"]["Value"]}
        assert stored == {ds.SOPInstanceUID for ds in sent}
        assert writes, "no part went through the disk spool"
        assert max(lags) < SLOW_WRITE_S / 2, f"the event loop stood still {max(lags):.3f} s"
    finally:
        archive.close()
