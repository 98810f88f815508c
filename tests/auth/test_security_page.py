"""The security administrator's page in headless Chromium at 390x844: the login with its forced
password change and TOTP set-up, the policy changed and recorded, second factors, the MLPS
statement, both languages; the system administrator's key may look but not change."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.net import YunyingServer
from tests.auth import plain
from tests.auth.signin import set_up_totp_in_page
from tests.conftest import start_with_env
from tests.frontends.conftest import PHONE

PASSWORD = "Page-sec-pw-1"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_with_env(tmp_path_factory.mktemp("secpage") / "data")
    r = plain.post(s.http_url + "/api/admin/users", headers=s.headers, json={
        "username": "sec.page", "password": PASSWORD, "roles": [{"role": "security_admin"}]})
    assert r.status_code == 201, r.text
    yield s
    s.stop()


def test_the_security_admin_sets_the_policy_on_a_phone(srv: YunyingServer, open_page: Any) -> None:
    p = open_page(**PHONE)
    page = p.page
    page.goto(srv.http_url + "/admin/security/?lang=en")
    page.wait_for_url(lambda url: "/login?" in url)
    page.fill("#username", "sec.page")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/password?" in url)
    assert "at least 8 characters" in page.inner_text("main")  # the rules, stated before typing
    page.fill("#current", PASSWORD)
    page.fill("#new", "Strong-Sec-2026")
    page.fill("#confirm", "Strong-Sec-2026")
    page.click("button[type=submit]")
    set_up_totp_in_page(page)
    page.wait_for_url(srv.http_url + "/admin/security/?lang=en")
    page.wait_for_function("document.querySelector('[name=password_min_length]').value === '8'")
    assert page.locator("header h1").inner_text() == "Security policy"
    assert page.is_checked("[name=totp_admins]")

    page.fill("[name=lockout_minutes]", "20")
    page.click("#save")
    page.wait_for_function("document.querySelector('#message').textContent.includes('audit trail')")
    got = plain.get(srv.http_url + "/api/admin/security-policy", headers=srv.headers).json()["policy"]
    assert got["lockout_minutes"] == 20

    page.click("[data-tab=factors]")
    page.fill("#factor-form [name=username]", "sec.page")
    page.click("#factor-form button")
    page.wait_for_function("document.querySelector('#factor-status').textContent.includes('10 recovery codes')")
    assert page.is_visible("#factor-reset")

    page.click("[data-tab=statement]")
    page.wait_for_selector("#controls li")
    assert "8.1.4.1 Identification and authentication" in page.inner_text("#controls")
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    assert page.locator("header h1").inner_text() == "安全策略"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not p.errors, (p.errors, p.failed)


def test_the_system_admin_may_look_but_not_change_the_policy(srv: YunyingServer, open_page: Any) -> None:
    p = open_page(**PHONE)
    page = p.page
    page.goto(f"{srv.http_url}/admin/security/?lang=en#access_token={srv.api_key}")  # an `admin` key
    page.wait_for_function("document.querySelector('[name=password_min_length]').value !== ''")
    page.fill("[name=password_min_length]", "6")
    page.click("#save")
    page.wait_for_function("document.querySelector('#message').textContent.includes('Only the security administrator')")
    assert plain.get(srv.http_url + "/api/admin/security-policy", headers=srv.headers).json()[
        "policy"]["password_min_length"] == 8
