"""The admin page in headless Chromium at 390x844: first login with the forced password change,
users, role search, a registration approved with its photos shown, both languages."""
from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.net import YunyingServer
from tests.auth import plain
from tests.auth.signin import set_up_totp_in_page, sign_in, sign_in_page
from tests.conftest import start_with_env
from tests.frontends.conftest import PHONE

PASSWORD = "page-admin-pw-1"
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2b0c1d80000000049454e44ae426082")).decode()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_with_env(tmp_path_factory.mktemp("adminpage") / "data", YUNYING_ADMIN_PASSWORD=PASSWORD)
    yield s
    s.stop()


def test_admin_page_on_a_phone(srv: YunyingServer, open_page: Any) -> None:
    photos = [{"kind": k, "content_type": "image/png", "data": PNG} for k in ("id_card", "qualification")]
    assert plain.post(srv.http_url + "/api/auth/register", json={
        "username": "dr.reg", "password": "reg-password-1", "display_name": "注册医生", "phone": "13900000000",
        "hospital": "default", "photos": photos}).status_code == 201
    p = open_page(**PHONE)
    page = p.page
    page.goto(srv.http_url + "/admin/?lang=zh-CN")
    # no token: through the one login page (and its forced password change) and back here
    sign_in_page(page, "admin", PASSWORD, "Page-chief-pw-2")
    _, recovery = set_up_totp_in_page(page)  # mandatory for an administrator
    assert len(recovery) == 10
    page.wait_for_url(srv.http_url + "/admin/?lang=zh-CN")
    page.wait_for_selector("#user-list li")
    assert "admin" in page.locator("#user-list").inner_text()

    page.fill("#add-user [name=username]", "dr.page")
    page.select_option("#add-user select", "radiologist")
    page.click("#add-user button")
    page.wait_for_function("document.querySelector('#message').textContent.includes('dr.page')")
    assert "一次性密码" in page.locator("#message").inner_text()
    page.wait_for_function("document.querySelector('#user-list').textContent.includes('dr.page')")
    assert "radiologist:junior" in page.locator("#user-list").inner_text()

    page.click("[data-tab=roles]")
    page.fill("#role-q", "audit")
    page.wait_for_function("document.querySelectorAll('#role-list li').length === 1")
    assert "audit.read" in page.locator("#role-list").inner_text()

    page.click("[data-tab=registrations]")
    page.wait_for_selector("#registration-list img")
    assert page.locator("#registration-list img").count() == 2
    assert page.evaluate("[...document.querySelectorAll('#registration-list img')].every(i => i.naturalWidth > 0)")
    page.click("#registration-list button[data-i18n='admin.registration.approve']")
    page.wait_for_function("document.querySelector('#message').textContent.includes('dr.reg')")
    assert sign_in(srv.http_url, "dr.reg", "reg-password-1").access_token

    page.click("[data-tab=hospitals]")
    page.fill("#add-hospital [name=id]", "h9")
    page.fill("#add-hospital [name=name]", "第九医院")
    page.click("#add-hospital button")
    page.wait_for_function("document.querySelector('#hospital-list').textContent.includes('第九医院 (h9)')")
    page.once("dialog", lambda dialog: dialog.accept("放射科"))
    page.locator("#hospital-list li", has_text="h9").locator("button").click()
    page.wait_for_function("document.querySelector('#hospital-list').textContent.includes('放射科')")

    page.click("[data-tab=clients]")
    page.wait_for_selector("#client-list li")
    assert "yunying-web" in page.inner_text("#client-list")
    page.fill("#add-client [name=name]", "RIS gateway")
    page.fill("#add-client [name=scope]", "dicomweb.read")
    page.uncheck("#add-client [name=public]")
    page.click("#add-client button")
    page.wait_for_function("document.querySelector('#message').textContent.includes('ycs_')")  # the secret, once
    page.wait_for_function("document.querySelector('#client-list').textContent.includes('RIS gateway')")

    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert page.locator("header h1").inner_text() == "System administration"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not p.errors, (p.errors, p.failed)


def test_the_admin_page_without_a_token_asks_to_log_in(srv: YunyingServer, open_page: Any) -> None:
    p = open_page(**PHONE)
    p.page.goto(srv.http_url + "/admin/?lang=en")
    p.page.wait_for_url(lambda url: "/login?" in url)  # the archive's one login page
    p.page.fill("#username", "admin")
    p.page.fill("#password", "wrong-password-0")
    p.page.click("button[type=submit]")
    p.page.wait_for_selector(".error[role=alert]")
    assert "/admin/" not in p.page.url
