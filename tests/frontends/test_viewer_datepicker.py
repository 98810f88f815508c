"""The study list's date range speaks the page's language: ISO text fields with a localized
placeholder (not the browser's mm/dd/yyyy), a calendar with localized month and weekday names,
typed dates normalized, quick ranges; at 390x844 and on a desktop."""
from __future__ import annotations

import datetime
from typing import Any

import pytest

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, PHONE
from tests.frontends.phantom import store_ct


@pytest.fixture(scope="module")
def studies(archive: YunyingServer) -> list[str]:
    today = datetime.date.today()
    return [store_ct(archive, 1, 32, patient_id="P-DATE", study_date=d)[0]
            for d in (today.strftime("%Y%m%d"), "20240110", "20240220")]


def listed(page: Any) -> int:
    page.wait_for_function("document.querySelector('#results')?.getAttribute('aria-busy') === 'false'")
    return int(page.locator("#results .study").count())


def test_phone_calendar_in_chinese(open_page: Any, archive: YunyingServer, studies: list[str]) -> None:
    p = open_page(**PHONE, locale="en-US")  # an English browser: the page's language decides
    page = p.page
    page.goto(f"{archive.http_url}/viewer/?lang=zh-CN&id=P-DATE#access_token={archive.api_key}")
    assert listed(page) == 3
    assert page.get_attribute("#search [name=from]", "placeholder") == "年-月-日"
    assert page.get_attribute("#search [name=from]", "type") != "date"
    page.fill("#search [name=from]", "2024-01-15")
    page.locator("#search [name=from] + .cal-open").click()
    assert page.inner_text(".calendar .cal-title") == "2024年1月"
    assert page.locator(".calendar .cal-wd").all_inner_texts() == ["一", "二", "三", "四", "五", "六", "日"]
    page.click(".calendar .cal-next")
    assert page.inner_text(".calendar .cal-title") == "2024年2月"
    page.click(".calendar button[data-date='2024-02-01']")
    assert page.input_value("#search [name=from]") == "2024-02-01" and page.locator(".calendar").count() == 0
    page.locator("#search [name=to] + .cal-open").click()  # empty: at the month of "from"
    assert page.inner_text(".calendar .cal-title") == "2024年2月"
    box = page.locator(".calendar").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.click(".calendar button[data-date='2024-02-29']")  # a leap day
    page.click("#search button[type=submit]")
    assert listed(page) == 1
    page.click("#search .quick button:has-text('今天')")
    page.wait_for_function("document.querySelector('#search [name=from]').value !== '2024-02-01'")
    assert listed(page) == 1
    assert page.input_value("#search [name=from]") == datetime.date.today().isoformat()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not p.errors, p.errors


def test_desktop_typed_dates_are_normalized(open_page: Any, archive: YunyingServer, studies: list[str]) -> None:
    p = open_page(**DESKTOP)
    page = p.page
    page.goto(f"{archive.http_url}/viewer/?lang=en&id=P-DATE#access_token={archive.api_key}")
    assert listed(page) == 3
    assert page.get_attribute("#search [name=to]", "placeholder") == "YYYY-MM-DD"
    page.fill("#search [name=from]", "2024/1/1")
    page.fill("#search [name=to]", "2024年1月31日")
    page.click("#search button[type=submit]")
    assert listed(page) == 1
    assert (page.input_value("#search [name=from]"), page.input_value("#search [name=to]")) == ("2024-01-01", "2024-01-31")
    assert "from=2024-01-01" in page.url
    page.fill("#search [name=from]", "2024-02-01")
    page.fill("#search [name=to]", "2024-02-30")  # no such day: marked, and left out of the search
    page.click("#search button[type=submit]")
    assert listed(page) == 2
    assert page.get_attribute("#search [name=to]", "aria-invalid") == "true"
    page.locator("#search [name=from] + .cal-open").click()
    assert page.inner_text(".calendar .cal-title") == "February 2024"
    page.click("#search .quick button:has-text('Any date')")
    assert listed(page) == 3
    assert not p.errors, p.errors
