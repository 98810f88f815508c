"""The master index page in headless Chromium on a phone: a review linked, the person found,
the link undone, a code table imported; both languages."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.net import YunyingServer
from tests.conftest import start_with_env
from tests.frontends.conftest import DESKTOP, PHONE


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_with_env(tmp_path_factory.mktemp("mpipage") / "data")
    with httpx.Client(base_url=s.http_url + "/api/mpi", headers=s.headers) as c:
        for pid, issuer, name, phone in (("P1", "HIS-A", "刘洋", "13700001111"), ("Q9", "HIS-B", "柳洋", "")):
            assert c.post("/observe", json={"source": "his", "issuer": issuer, "patient_id": pid, "name": name,
                                            "sex": "F", "birth_date": "19900214", "phone": phone}).json()["link"] in (
                "new", "review")  # homophones, same birth date: the second waits for review
    yield s
    s.stop()


def test_review_search_undo_on_a_phone(srv: YunyingServer, open_page: Any) -> None:
    p = open_page(**PHONE)
    page = p.page
    page.goto(f"{srv.http_url}/admin/mpi/?lang=zh-CN#access_token={srv.api_key}")
    page.wait_for_selector("#review-list li")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    assert not page.is_visible("#q") and not page.is_visible("#upload")  # the other tabs stay hidden
    card = page.locator("#review-list li").first
    assert "柳洋" in card.inner_text() and "刘洋" in card.inner_text()
    assert "*******1111" in card.inner_text() and "13700001111" not in page.content()
    card.get_by_text("是同一人，关联").click()
    page.wait_for_function("document.querySelector('#review-count').textContent.includes('没有')")

    page.click("[data-tab=search]")
    page.fill("#q", "Q9")
    page.wait_for_function("document.querySelectorAll('#identity-list .side').length === 2")
    page.locator("#identity-list button[data-i18n='mpi.history']").last.click()
    page.wait_for_selector("#event-list button")
    page.locator("#event-list button").first.click()  # undo the link
    page.wait_for_function("document.querySelectorAll('#identity-list .side').length === 1")
    assert not p.errors, p.errors


def test_code_table_and_english(srv: YunyingServer, open_page: Any, tmp_path: Path) -> None:
    table = tmp_path / "codes.csv"
    table.write_text("hospital,local_code,local_name,standard_code,standard_name\nh1,US01,腹部超声,US-ABD,腹部超声\n",
                     encoding="utf-8")
    p = open_page(**DESKTOP)
    page = p.page
    page.goto(f"{srv.http_url}/admin/mpi/?lang=en#access_token={srv.api_key}")
    page.wait_for_selector("#review-count:not(:empty)")
    assert page.locator("h1").inner_text() == "Patient master index"
    page.click("[data-tab=codes]")
    page.set_input_files("#table", str(table))
    page.click("#upload button")
    page.wait_for_selector("#code-list li")
    assert "US-ABD" in page.locator("#code-list").inner_text()
    assert "1 mappings imported" in page.locator("#message").inner_text()
    assert not p.errors, p.errors
