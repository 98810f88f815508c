"""The doctors' study list at /viewer/ without a study: QIDO-RS searches by name (pinyin or
Chinese characters), ID, date range; the patient's other exams; a tap opens the viewer."""
from __future__ import annotations

from typing import Any

import pytest

from benchmarks.net import YunyingServer
from tests.frontends.conftest import DESKTOP, PHONE
from tests.frontends.phantom import store_ct

WANG, LI = "Wang^Xiaodong=王^小东", "Li^Hua=李^华"


@pytest.fixture(scope="module")
def studies(archive: YunyingServer) -> dict[str, str]:
    return {
        "wang-2024": store_ct(archive, 2, 64, patient=WANG, patient_id="P-WANG", study_date="20240115")[0],
        "wang-2023": store_ct(archive, 2, 64, patient=WANG, patient_id="P-WANG", study_date="20230601")[0],
        "li-2024": store_ct(archive, 2, 64, patient=LI, patient_id="P-LI", study_date="20240301")[0],
    }


def names(page: Any) -> list[str]:
    return [str(n) for n in page.locator("#results .study .name").all_inner_texts()]


def done(page: Any) -> list[str]:
    page.wait_for_function("document.querySelector('#results')?.getAttribute('aria-busy') === 'false'")
    return names(page)


def search(page: Any, **fields: str) -> list[str]:
    for name, text in fields.items():
        page.fill(f"#search [name={name}]", text)
    page.click("#search button[type=submit]")
    return done(page)


def test_search_by_name_id_and_date_then_open(open_page: Any, archive: YunyingServer, studies: dict[str, str]) -> None:
    p = open_page(**DESKTOP)
    page = p.page
    page.goto(f"{archive.http_url}/viewer/?lang=en#access_token={archive.api_key}")
    done(page)
    page.wait_for_function("document.querySelectorAll('#results .study').length === 3")
    assert names(page) == ["李 华 / Li Hua", "王 小东 / Wang Xiaodong", "王 小东 / Wang Xiaodong"]  # newest first
    assert search(page, name="wang") == ["王 小东 / Wang Xiaodong"] * 2
    assert search(page, name="王") == ["王 小东 / Wang Xiaodong"] * 2
    assert search(page, name="li hua") == ["李 华 / Li Hua"]
    assert search(page, name="", id="LI") == ["李 华 / Li Hua"]
    assert len(search(page, id="", **{"from": "2024-01-01"})) == 2
    assert search(page, **{"from": ""}, to="2023-12-31") == ["王 小东 / Wang Xiaodong"]
    page.fill("#search [name=to]", "")
    search(page, name="li")
    page.click("#results .study .same-patient")
    assert done(page) == ["李 华 / Li Hua"]
    assert page.input_value("#search [name=id]") == "P-LI"
    assert search(page, name="小东", id="") == ["王 小东 / Wang Xiaodong"] * 2
    search(page, name="", **{"from": "2024-01-01"})  # only the newer exam of Wang ...
    page.locator("#results .study", has_text="Wang").locator(".same-patient").click()
    assert done(page) == ["王 小东 / Wang Xiaodong"] * 2  # ... and its button finds both
    page.locator("#results .study a").first.click()
    page.wait_for_function("performance.getEntriesByName('full-fidelity').length > 0", timeout=30000)
    assert "study=" in page.url and "lang=en" in page.url
    assert not p.errors


def test_phone_list_in_chinese_without_horizontal_scroll(open_page: Any, archive: YunyingServer, studies: dict[str, str]) -> None:
    p = open_page(**PHONE, locale="zh-CN")
    page = p.page
    page.goto(f"{archive.http_url}/viewer/#access_token={archive.api_key}")
    page.wait_for_function("document.querySelectorAll('#results .study').length === 3")
    assert page.inner_text("#search button[type=submit]") == "搜索"
    assert page.get_attribute("#search [name=name]", "placeholder") == "姓名（汉字或拼音）"
    assert page.inner_text("#list-count") == "共 3 项检查"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not p.errors
