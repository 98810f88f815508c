"""'Who opened my exams' on the patient's page (issue 12 part 3) in headless Chromium at 390x844
against a real archive: a doctor (a user signed in through the login page) opens the patient's
study over WADO-RS, the patient signs in by SMS and reads that access in plain words, in zh-CN
and in English; another patient's page never lists it."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests.auth.test_access import make_user
from tests.conftest import start_with_env
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.portal.conftest import issue, store_study
from tests.portal.test_portal_page import phone_page, verify_by_sms

ME, OTHER = "13600001111", "13600002222"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_with_env(tmp_path_factory.mktemp("accesses") / "data", YUNYING_ADMIN_PASSWORD="first-admin-pw-123")
    yield s
    s.stop()


def open_list(page: Any) -> str:
    page.tap("#accesses summary")
    page.wait_for_function("document.querySelector('#accesses-list li') || "
                           "document.querySelector('#accesses-state').textContent.length > 8")
    return str(page.inner_text("#accesses"))


def test_the_patient_sees_the_doctor_who_opened_the_exam_in_both_languages(open_page: Any, srv: YunyingServer) -> None:
    mine = store_study(srv, accession="ACC-ME")
    url = issue(srv, study=mine, phone=ME).json()["url"]
    doctor = make_user(srv, "dr.zhou", [{"role": "doctor"}])
    r = httpx.get(f"{srv.dicomweb_url}/studies/{mine}/metadata", headers={"Authorization": f"Bearer {doctor}"})
    assert r.status_code == 200, r.text

    p = phone_page(open_page)
    page = p.page
    verify_by_sms(page, srv, url, ME)
    text = open_list(page)
    assert "医院工作人员 dr.zhou（医生）" in text and "打开了检查信息" in text, text
    assert "2024-01-01" in text  # the exam named as its card names it
    first = page.inner_text("#accesses-list li:first-child")
    assert "您本人" in first  # newest first: the patient's own page loading the exam comes after the doctor
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no horizontal scroll
    assert ME not in page.inner_text("#accesses")

    page.tap("#lang")  # the open list is read again in English, times in English too
    page.wait_for_function("document.querySelector('#accesses').innerText.includes('Hospital staff dr.zhou (doctor)')")
    text = page.inner_text("#accesses")
    assert "opened the exam's details" in text and "Who opened my exams" in text
    assert any(m in page.inner_text("#accesses-list time") for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
                                                                     "Aug", "Sep", "Oct", "Nov", "Dec"))
    assert not [s for s in p.statuses if s[0] >= 500], p.statuses
    assert not p.errors, p.errors


def store_for(srv: YunyingServer, patient_id: str, accession: str) -> str:
    uid = generate_uid()
    body, ctype = multipart(part10(make_ct(uid, accession=accession, patient_id=patient_id, name="Wang^Wu")))
    r = httpx.post(srv.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype, **srv.headers})
    assert r.status_code == 200, r.text
    return uid


def test_another_patient_sees_no_access_to_exams_not_theirs_and_a_failure_is_said(
        open_page: Any, srv: YunyingServer) -> None:
    first, second = store_for(srv, "P-FIRST", "ACC-1"), store_for(srv, "P-SECOND", "ACC-2")
    doctor = make_user(srv, "dr.qian", [{"role": "doctor"}])
    assert httpx.get(f"{srv.dicomweb_url}/studies/{first}/metadata",
                     headers={"Authorization": f"Bearer {doctor}"}).status_code == 200
    url = issue(srv, study=second, phone=OTHER).json()["url"]
    p = phone_page(open_page, "en")
    page = p.page
    verify_by_sms(page, srv, url, OTHER)
    text = open_list(page)
    assert "dr.qian" not in text and "opened the exam's details" not in text, text
    assert "Hospital system" in text and "stored images" in text  # their own exam's arrival is listed

    page.route("**/api/audit/mine", lambda route: route.abort())  # the network fails: said, not a blank list
    page.tap("#accesses summary")  # close
    page.tap("#accesses summary")  # and open again: read again
    page.wait_for_function("document.querySelector('#accesses-state').innerText.includes('cannot be shown')")
    assert page.locator("#accesses-list li").count() == 0
