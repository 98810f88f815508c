"""The patient's path in headless Chromium at 390x844 (touch) against a real archive: QR URL ->
SMS code (read from the file gateway) -> exam list -> the viewer renders; shares with codes;
refusals are clear bilingual pages, never a 500."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from benchmarks.net import YunyingServer
from tests.frontends.conftest import PHONE as PHONE_CONTEXT
from tests.portal.conftest import PHONE, issue, last_code, store_study, verify_by_sms


def phone_page(open_page: Any, lang: str = "zh-CN") -> Any:
    p = open_page(**PHONE_CONTEXT, locale=lang)
    p.statuses = []
    p.page.on("response", lambda r: p.statuses.append((r.status, r.url)))
    return p


def test_patient_path_qr_sms_exams_viewer(open_page: Any, srv: YunyingServer) -> None:
    study = store_study(srv, accession="PATH-1")
    url = issue(srv, study=study, phone=PHONE).json()["url"]
    p = phone_page(open_page)
    page = p.page
    verify_by_sms(page, srv, url)
    card = page.inner_text(".exam")
    assert "2024-01-01" in card and "影像已出" in card and "CT" in card
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no horizontal scroll
    page.tap(".exam .view")
    page.wait_for_url("**/viewer/**")
    page.wait_for_function("performance.getEntriesByName('first-image').length > 0", timeout=30000)
    assert "access_token" not in page.url
    assert not [s for s in p.statuses if s[0] >= 500], p.statuses
    assert not p.errors, p.errors


def test_wrong_code_is_said_in_english_then_five_lock(open_page: Any, srv: YunyingServer) -> None:
    phone = "13500000001"
    url = issue(srv, study=store_study(srv), phone=phone).json()["url"]
    page = phone_page(open_page, "en").page
    page.goto(url)  # the language comes from the browser (locale en)
    page.wait_for_selector("#verify:not([hidden]) #sms-form:not([hidden])")
    assert "phone number on record: *******0001" in page.inner_text("#phone-hint")
    page.fill("#phone", phone)
    page.tap("#send")
    page.wait_for_function("document.querySelector('#send').disabled")
    good = last_code(srv, phone)
    bad = f"{(int(good) + 1) % 10 ** 6:06d}"
    for _ in range(4):
        page.fill("#code", bad)
        page.tap("#sms-submit")
        page.wait_for_function("document.querySelector('#verify-message').innerText.includes('Wrong code')")
        page.evaluate("document.querySelector('#verify-message').textContent = ''")
    page.fill("#code", bad)
    page.tap("#sms-submit")
    page.wait_for_function("document.querySelector('#verify-message').innerText.includes('Locked')")
    page.fill("#code", good)
    page.tap("#sms-submit")
    page.wait_for_function("document.querySelector('#verify-message').innerText.includes('Too many')")


def test_unknown_exam_code_is_a_clear_page(open_page: Any, srv: YunyingServer) -> None:
    page = phone_page(open_page).page
    page.goto(srv.http_url + "/portal/#exam=ycap_not-a-real-token")
    page.wait_for_selector("#problem:not([hidden])")
    assert "无效" in page.inner_text("#problem")


def test_share_opens_with_its_code_refuses_a_wrong_one_and_says_revoked_and_expired(
        open_page: Any, srv: YunyingServer) -> None:
    phone = "13500000002"
    url = issue(srv, study=store_study(srv), phone=phone).json()["url"]
    patient = phone_page(open_page).page
    verify_by_sms(patient, srv, url, phone)
    patient.tap(".exam .share")
    patient.select_option("#share-hours", "72")
    patient.tap("#share-create")
    patient.wait_for_selector("#share-result:not([hidden]) svg")
    share_url, code = patient.input_value("#share-url"), patient.inner_text("#share-code")
    assert len(code) == 6 and "/portal/share.html#t=ycap_" in share_url

    friend = phone_page(open_page, "en")
    page = friend.page
    page.goto(share_url)
    page.wait_for_selector("#code-form:not([hidden])")
    page.fill("#access-code", "000000" if code != "000000" else "111111")
    page.tap("#code-form button")
    page.wait_for_function("document.querySelector('#message').innerText.includes('Wrong access code')")
    page.fill("#access-code", code)
    page.tap("#code-form button")
    page.wait_for_url("**/viewer/**")
    page.wait_for_function("performance.getEntriesByName('first-image').length > 0", timeout=30000)
    assert not [s for s in friend.statuses if s[0] >= 500]

    patient.tap(".revoke")
    patient.wait_for_function("document.querySelector('#shares').innerText.includes('已撤销')")
    late = phone_page(open_page, "en").page
    late.goto(share_url)
    late.wait_for_selector("#problem:not([hidden])")
    assert "withdrawn" in late.inner_text("#problem")

    patient.tap(".exam .share")
    patient.tap("#share-create")
    patient.wait_for_function(f"document.querySelector('#share-url').value !== {share_url!r}")
    second = patient.input_value("#share-url")
    with sqlite3.connect(Path(srv.data_dir) / "app.sqlite") as db:  # its validity runs out
        db.execute("UPDATE capability_tokens SET expires_at = 1000 WHERE kind = 'share' AND revoked_at IS NULL")
    expired = phone_page(open_page).page
    expired.goto(second)
    expired.wait_for_selector("#problem:not([hidden])")
    assert "已过期" in expired.inner_text("#problem")


def test_download_shows_password_and_size_and_saves_the_zip(open_page: Any, srv: YunyingServer, tmp_path: Path) -> None:
    import pyzipper

    phone = "13500000003"
    url = issue(srv, study=store_study(srv), phone=phone).json()["url"]
    p = open_page(**PHONE_CONTEXT, locale="en", accept_downloads=True)
    page = p.page
    verify_by_sms(page, srv, url, phone)
    page.tap(".exam .download")
    page.wait_for_selector(".zip .zip-password")
    password = page.inner_text(".zip-password")
    assert "MB, valid until" in page.inner_text(".zip")
    with page.expect_download() as download:
        page.tap(".zip-save")
    saved = tmp_path / "exam.zip"
    download.value.save_as(saved)
    with pyzipper.AESZipFile(saved) as z:
        z.setpassword(password.encode())
        assert z.read("DICOM/DICOMDIR")[128:132] == b"DICM"


def test_cloud_film_shows_zooms_and_saves_a_pdf(open_page: Any, srv: YunyingServer, tmp_path: Path) -> None:
    phone = "13500000004"
    url = issue(srv, study=store_study(srv), phone=phone).json()["url"]
    p = open_page(**PHONE_CONTEXT, locale="zh-CN", accept_downloads=True)
    page = p.page
    verify_by_sms(page, srv, url, phone)
    page.tap(".exam .film-open")
    page.wait_for_selector(".film img")
    assert page.evaluate("document.querySelector('.film img').naturalWidth") == 4200
    assert page.evaluate("document.querySelector('.film img').naturalHeight") == 5100
    page.tap(".film img")
    assert page.evaluate("document.querySelector('.film img').classList.contains('zoomed')")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the film scrolls inside its box
    with page.expect_download() as download:
        page.tap(".film-pdf")
    saved = tmp_path / "film.pdf"
    download.value.save_as(saved)
    assert saved.read_bytes().startswith(b"%PDF")
    assert not p.errors, p.errors


def test_adding_an_exam_by_hand_on_the_page(open_page: Any, srv: YunyingServer) -> None:
    phone = "13500000005"
    url = issue(srv, study=store_study(srv), phone=phone).json()["url"]
    other = store_study(srv, accession="PAGE-HAND")
    issue(srv, study=other, accession="PAGE-HAND", phone="13500000006", name="张三")
    p = open_page(**PHONE_CONTEXT, locale="en")
    page = p.page
    verify_by_sms(page, srv, url, phone)
    assert page.locator(".exam").count() == 1
    page.tap("#add-exam summary")
    assert page.input_value("#add-hospital") == "default"
    page.fill("#add-accession", "PAGE-HAND")
    page.fill("#add-date", "2024-01-01")
    page.fill("#add-name", "李四")
    page.tap("#add-form button")
    page.wait_for_function("document.querySelector('#add-message').innerText.includes('does not match')")
    page.fill("#add-name", "张三")
    page.tap("#add-form button")
    page.wait_for_function("document.querySelectorAll('.exam').length === 2")
    assert not [e for e in p.errors if "status of 401" not in e], p.errors  # the wrong try's 401 is expected
