"""The jobs page (issue 15 part 8) in headless Chromium on a phone: collectors' state, counts and
errors, "sync now", a real-time refresh of one accession, both languages."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.collect import SyntheticPacs
from benchmarks.net import YunyingServer
from tests.collect.conftest import READER, job, source, start_collecting, study_counts
from tests.frontends import conftest as fe

open_page = fe.open_page  # the front ends' browser fixture, shared


@pytest.fixture(scope="module")
def pacs() -> Iterator[SyntheticPacs]:
    p = SyntheticPacs(studies=4, days=2, seed=11).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def srv(pacs: SyntheticPacs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_collecting(tmp_path_factory.mktemp("jobs-page") / "data",
                         [source("ris-pacs", pacs.aet, pacs.port, retrieve="get", schedule=["0 7,12,18 * * *"],
                                 window_days=0),
                          source("refusing", "NOBODY", 9, timeout=1)])  # port 9: nobody listens
    yield s
    s.stop()


def test_jobs_page_on_a_phone(srv: YunyingServer, pacs: SyntheticPacs, open_page: Any) -> None:
    p = open_page(**fe.PHONE)
    page = p.page
    page.goto(f"{srv.http_url}/admin/jobs/?lang=en#access_token={srv.api_key}")
    card = page.locator("li.job[data-name='ris-pacs']")
    card.wait_for()
    card.locator(".state", has_text="idle").wait_for()
    assert "0 7,12,18 * * *" in card.inner_text()
    card.locator("button", has_text="Sync now").click()
    page.locator("#message", has_text="ris-pacs: started").wait_for()
    page.wait_for_function("() => document.querySelector(\"li.job[data-name='ris-pacs']\")"
                           ".innerText.includes('Instances fetched')", timeout=30_000)
    page.wait_for_timeout(100)
    assert job(srv, "ris-pacs")["counts"]["instances_total"] == 4 * 2  # today's two studies
    # the refusing source: its error shows on its card
    bad = page.locator("li.job[data-name='refusing']")
    bad.locator("button", has_text="Sync now").click()
    page.wait_for_function("() => document.querySelector(\"li.job[data-name='refusing'] .state\")"
                           ".textContent === 'failed'", timeout=30_000)
    assert "NOBODY" in bad.locator(".errors").inner_text()
    # real-time refresh of one accession of yesterday
    page.select_option("#refresh-source", "ris-pacs")
    page.fill("input[name=accession]", f"ACC{pacs.seed}{2:06d}")  # study number 1: yesterday
    page.click("#refresh button[type=submit]")
    page.locator("#message", has_text="started").wait_for()
    for _ in range(150):  # the run goes on in the background
        if study_counts(srv).get(pacs.study_uid(1)) == 4:
            break
        page.wait_for_timeout(200)
    assert study_counts(srv).get(pacs.study_uid(1)) == 4
    page.click("#lang")
    page.locator("header h1", has_text="采集与后台任务").wait_for()
    card.locator("button", has_text="立即同步").wait_for()  # the cards are drawn again in Chinese
    box = page.locator("main").bounding_box()
    assert box is not None and box["width"] <= 390
    assert not p.errors, (p.errors, p.failed)


def test_without_the_permission_the_page_says_so(srv: YunyingServer, open_page: Any) -> None:
    p = open_page(**fe.PHONE)
    p.page.goto(f"{srv.http_url}/admin/jobs/?lang=en#access_token={READER}")
    p.page.locator("#message.error").wait_for()
    assert "Failed" in p.page.locator("#message").inner_text()
    assert p.page.locator("li.job").count() == 0
