"""Our pages sign people in through the one login page (authorization code + PKCE as the built-in
client `yunying-web`) in Debian's Chromium at 390x844 touch, against a real `yunying serve` whose
access tokens live one minute: back to the exact address, renewal without a password, another
hospital's doctor sees nothing, the admin page, sign-out, and plain http off localhost."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from benchmarks.net import YunyingServer
from tests.auth.signin import set_up_totp_in_page, sign_in_page
from tests.conftest import start_with_env
from tests.frontends.conftest import PHONE
from tests.frontends.phantom import store_ct

ADMIN_PASSWORD = "signin-admin-pw-1"
NEW_PASSWORD = "Signin-new-pw-2026"
TOKEN, REFRESH = "yunying.access_token", "yunying.refresh_token"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    s = start_with_env(tmp_path_factory.mktemp("signin") / "data", YUNYING_ADMIN_PASSWORD=ADMIN_PASSWORD,
                       YUNYING_OIDC_ACCESS_TOKEN_MINUTES="1")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def study(srv: YunyingServer) -> str:
    return store_ct(srv, 3, 128)[0]


def users(srv: YunyingServer, *args: str) -> str:
    """`yunying users ...` on the running server's data folder; its output."""
    done = subprocess.run([sys.executable, "-m", "yunying.cli", "users", *args, "--data", str(srv.data_dir)],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def new_doctor(srv: YunyingServer, username: str, hospital: str = "default") -> str:
    """A doctor with a one-time password (to be changed at first login); returns that password."""
    if hospital != "default" and hospital not in users(srv, "hospitals"):
        users(srv, "hospitals", "--add", hospital, "--name", hospital)
    made = users(srv, "add", username, "--hospital", hospital, "--role", "doctor")
    match = re.search(r"one-time password: (\S+)", made)
    assert match, made
    return match.group(1)


def painted(page: Any) -> None:
    page.wait_for_function("performance.getEntriesByName('full-fidelity').length > 0", timeout=30000)


def storage(page: Any, key: str) -> str | None:
    return page.evaluate("(k) => sessionStorage.getItem(k)", key)


def refused_by_archive(srv: YunyingServer, token: str | None, timeout: float = 10) -> None:
    """Wait (polling, with a deadline) until the archive answers 401 to `token`: its revocation
    reached the authorization point, so what the page sees next is the revoked-grant path."""
    deadline = time.monotonic() + timeout
    while (status := httpx.get(f"{srv.dicomweb_url}/studies", params={"limit": "1"},
                               headers={"Authorization": f"Bearer {token}"}).status_code) != 401:
        assert time.monotonic() < deadline, f"the revoked access token still gets {status}"
        time.sleep(0.05)


def test_a_doctor_opens_a_study_signs_in_and_keeps_working(srv: YunyingServer, study: str, open_page: Any) -> None:
    password = new_doctor(srv, "dr.wang")
    p = open_page(**PHONE)
    page = p.page
    visited: list[str] = []
    page.on("framenavigated", lambda frame: visited.append(frame.url) if frame == page.main_frame else None)
    address = f"{srv.http_url}/viewer/?study={study}&lang=en"
    page.goto(address)
    sign_in_page(page, "dr.wang", password, NEW_PASSWORD)  # the forced change on the way
    page.wait_for_url(address)  # exactly where the doctor was: no code, no state left in the address
    painted(page)
    assert storage(page, TOKEN) and storage(page, REFRESH)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.is_visible("#signout")
    assert not p.errors, p.errors  # no request went out without a token

    # the access token lives 60 s; while the doctor uses the page it is renewed ahead of expiry
    # (refresh rotation), no login page (an unused page lets it lapse: the policy's idle timeout)
    first, first_refresh = storage(page, TOKEN), storage(page, REFRESH)
    visited.clear()
    page.keyboard.press("Shift")
    page.wait_for_function(f"sessionStorage.getItem('{TOKEN}') !== {first!r}", timeout=70_000)
    assert storage(page, REFRESH) != first_refresh
    rotated = httpx.post(srv.http_url + "/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": first_refresh, "client_id": "yunying-web"})
    assert rotated.status_code == 400  # the old one is spent (and presenting it revokes the family)

    # ... which the page survives: the revoked tokens get a 401, renewal fails, and the browser goes
    # through the provider, whose login session answers at once: no password asked again
    refused_by_archive(srv, storage(page, TOKEN))
    page.reload()
    page.wait_for_url(re.compile(r"/viewer/\?code="))  # back from the provider with a new code
    page.wait_for_url(address)
    painted(page)
    assert not any("/login" in u for u in visited), visited

    # a token the archive refuses (a 401) is renewed once, silently, and the request repeated
    page.evaluate(f"sessionStorage.setItem('{TOKEN}', 'not-a-token')")
    page.reload()
    painted(page)
    assert storage(page, TOKEN) != "not-a-token"
    assert not any("/login" in u for u in visited), visited

    refresh = storage(page, REFRESH)
    page.click("#signout")
    page.wait_for_url(re.compile(r"/login\?"))  # the session ended: back at the viewer, it asks to log in
    assert httpx.post(srv.http_url + "/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh, "client_id": "yunying-web"}).status_code == 400
    # only the refusals provoked above (Chromium logs each failed answer as a console error)
    provoked = re.compile(r"status of 40[01] ")
    assert not [e for e in p.errors if not provoked.search(e)], p.errors


def test_a_doctor_of_another_hospital_does_not_find_the_study(srv: YunyingServer, study: str,
                                                               open_page: Any) -> None:
    password = new_doctor(srv, "dr.li", "h2")
    p = open_page(**PHONE)
    page = p.page
    page.goto(f"{srv.http_url}/viewer/?study={study}&lang=en")
    sign_in_page(page, "dr.li", password, NEW_PASSWORD)
    page.wait_for_function("document.querySelector('#status').textContent === 'Study not found'")
    assert storage(page, TOKEN)
    assert page.evaluate("performance.getEntriesByName('first-image').length") == 0


def test_the_admin_page_signs_in_through_the_login_page(srv: YunyingServer, open_page: Any) -> None:
    p = open_page(**PHONE)
    page = p.page
    page.goto(f"{srv.http_url}/admin/?lang=zh-CN")
    page.wait_for_url(re.compile(r"/login\?"))
    assert page.get_attribute("html", "lang") == "zh-CN"  # the page's language (Chromium asks for en-US)
    sign_in_page(page, "admin", ADMIN_PASSWORD, "Signin-chief-pw-2")
    set_up_totp_in_page(page)  # an administrator must set up a second factor (issue 12)
    page.wait_for_url(f"{srv.http_url}/admin/?lang=zh-CN")
    page.wait_for_selector("#user-list li")
    assert "admin" in page.locator("#user-list").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.click("#logout")
    page.wait_for_url(re.compile(r"/login\?"))
    assert not storage(page, TOKEN)
    assert not p.errors, p.errors


def test_plain_http_off_localhost_says_why_it_cannot_sign_in_page(srv: YunyingServer, open_page: Any) -> None:
    """WebCrypto (PKCE's SHA-256) exists only on https or localhost: the page says so in both languages."""
    p = open_page(**PHONE)
    page = p.page

    def through(route: Any) -> None:  # the real archive behind a made-up plain-http host name
        url = route.request.url.replace("http://archive.example", srv.http_url)
        route.fulfill(response=page.request.fetch(url))

    page.route("http://archive.example/**", through)
    page.goto("http://archive.example/viewer/?study=1.2.3")
    page.wait_for_selector("#signin-notice p[lang=en]")
    text = page.inner_text("#signin-notice")
    assert "https://" in text and "安全连接" in text and "secure connection" in text
    assert page.url.startswith("http://archive.example/viewer/")  # it stayed: no login loop


def test_a_link_token_that_expired_is_said_so_not_sent_to_the_doctors_login(srv: YunyingServer, study: str,
                                                                            open_page: Any) -> None:
    p = open_page(**PHONE)
    p.page.goto(f"{srv.http_url}/viewer/?study={study}&mode=patient#access_token=expired-share-token")
    p.page.wait_for_selector("#signin-notice p[lang=en]")
    assert "expired" in p.page.inner_text("#signin-notice") and "/viewer/" in p.page.url
