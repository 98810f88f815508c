"""The delivery console's page in headless Chromium at 390x844 (touch): figures, exam search,
the report preview, switching an exam off (the patient's portal then says so), the access log,
both languages, no horizontal scroll."""
from __future__ import annotations

from typing import Any

from benchmarks.net import YunyingServer
from tests.frontends.conftest import PHONE as PHONE_CONTEXT
from tests.portal.conftest import issue, store_study
from tests.portal.test_fhir_reports import post, report


def test_console_page_on_a_phone(open_page: Any, srv: YunyingServer) -> None:
    study = store_study(srv, accession="DESK-1")
    assert post(srv, report("final", identifier=[{"type": {"coding": [{"code": "ACSN"}]}, "value": "DESK-1"}])
                ).status_code == 201
    url = issue(srv, study=study, phone="13511112222").json()["url"]
    p = open_page(**PHONE_CONTEXT, locale="zh-CN")
    page = p.page
    page.on("dialog", lambda d: d.accept())  # the confirmation before switching off
    page.goto(srv.http_url + "/portal/console/#access_token=" + srv.api_key)
    page.wait_for_function("document.querySelector('#t-exams').textContent !== '–'")
    assert int(page.inner_text("#t-exams")) >= 1 and int(page.inner_text("#t-qr")) >= 1
    assert page.locator("#per-modality tr").count() >= 2  # CT and DOC (the report)
    assert "access_token" not in page.url
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    page.tap("[data-tab=exams]")
    page.fill("#search [name=accession]", "DESK-1")
    page.tap("#search button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#exam-list li').length === 1")
    card = page.inner_text("#exam-list li")
    assert "DESK-1" in card and "张三" in card and "1 份已发布" in card and "已发二维码" in card
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    with page.expect_download() as saved:  # a PDF PDFium cannot draw (422) is saved as it is
        page.get_by_text("查看报告").tap()
    assert saved.value.suggested_filename == "report.pdf"  # pages drawn in place: tests/portal/test_report_pages.py

    page.get_by_text("停止在线交付").tap()
    page.wait_for_function("document.querySelector('#exam-list li')?.textContent.includes('已停止在线交付')")
    patient = open_page(**PHONE_CONTEXT, locale="zh-CN").page
    patient.goto(url)
    patient.wait_for_selector("#problem:not([hidden])")
    assert "医院已停止该检查的在线交付" in patient.inner_text("#problem")

    page.tap("#lang")
    page.wait_for_function("document.querySelector('[data-tab=access]').textContent === 'Access log'")
    page.tap("[data-tab=access]")
    page.fill("#access-form [name=accession]", "DESK-1")
    page.tap("#access-form button[type=submit]")
    page.wait_for_function("/found|Nothing/.test(document.querySelector('#access-count').textContent)")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not [e for e in p.errors if "status of 422" not in e], (p.errors, p.failed)  # the undrawable PDF
