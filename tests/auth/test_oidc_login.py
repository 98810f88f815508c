"""The login page: zh-CN / en, wrong password, forced password change; in Chromium at 390x844."""
from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.auth.oidc_harness import ProviderServer, pkce, provider_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture
def ps(tmp_path: Path) -> Iterator[ProviderServer]:
    with provider_server(tmp_path) as srv:
        yield srv


def authorize_url(ps: ProviderServer, client_id: str, redirect: str) -> str:
    _, challenge = pkce()
    q = httpx.QueryParams({"response_type": "code", "client_id": client_id, "redirect_uri": redirect,
                           "scope": "openid dicomweb.read", "code_challenge": challenge,
                           "code_challenge_method": "S256", "state": "s"})
    return f"{ps.url}/oauth/authorize?{q}"


def test_every_login_key_used_is_in_both_catalogs() -> None:
    used = set()
    for page in (ROOT / "frontends" / "login").glob("*.html"):
        used |= set(re.findall(r"\{\{(login\.[\w.]+)\}\}", page.read_text()))
    code = (ROOT / "dicomweb" / "login.py").read_text() + (ROOT / "dicomweb" / "second_factor.py").read_text()
    used |= {k for k in re.findall(r'"(login\.[\w.]+)"', code) if not k.endswith((".html", ".css"))}
    assert "login.title" in used
    for lang in ("zh-CN", "en"):
        catalog = json.loads((ROOT / "frontends" / "i18n" / f"{lang}.json").read_text())
        assert used <= set(catalog), (lang, used - set(catalog))


def test_wrong_password_stays_on_the_page_and_sets_no_session(ps: ProviderServer) -> None:
    with httpx.Client(trust_env=False) as http:
        r = http.post(f"{ps.url}/login", data={"username": "alice", "password": "nope"},
                      headers={"Accept-Language": "en"})
        assert r.status_code == 401 and "Wrong username or password" in r.text  # 401: the audit trail's "refused"
        assert "yunying_session" not in r.cookies
        r = http.get(f"{ps.url}/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
        assert "登录" in r.text and r.headers["x-frame-options"] == "DENY"


def test_login_never_redirects_off_site(ps: ProviderServer) -> None:
    with httpx.Client(trust_env=False) as http:
        r = http.post(f"{ps.url}/login", data={"username": "alice", "password": "alice-password-1",
                                               "next": "https://evil.example/"})
        assert r.status_code == 303 and r.headers["location"].startswith("/login/done")
        done = http.get(ps.url + r.headers["location"])
        assert done.status_code == 200 and "/login/logout" in done.text


def test_a_user_who_must_change_the_password_gets_no_code_until_changed(ps: ProviderServer) -> None:
    with httpx.Client(trust_env=False) as http:
        url = authorize_url(ps, ps.public_id, "https://viewer.example/callback")
        login = http.get(url).headers["location"]
        nxt = parse_qs(urlsplit(login).query)["next"][0]
        r = http.post(f"{ps.url}/login", data={"username": "bob", "password": "bob-first-pass", "next": nxt})
        assert r.status_code == 303 and r.headers["location"].startswith("/login/password")
        again = http.get(url)  # the half-open session cannot authorize
        assert again.status_code == 302 and again.headers["location"].startswith("/login/password")
        page = http.get(ps.url + r.headers["location"])
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        bad = http.post(f"{ps.url}/login/password", data={"current": "bob-first-pass", "new": "n3w-password!",
                                                          "confirm": "n3w-password!", "csrf": "forged",
                                                          "next": nxt})
        assert bad.status_code == 200 and 'name="password"' in bad.text  # back to login: no change
        ok = http.post(f"{ps.url}/login/password", data={"current": "bob-first-pass", "new": "n3w-password!",
                                                         "confirm": "n3w-password!", "csrf": csrf.group(1),
                                                         "next": nxt})
        assert ok.status_code == 303 and ok.headers["location"] == nxt
        code = http.get(ps.url + nxt)
        assert code.status_code == 302 and "code=" in code.headers["location"]
    assert ps.directory.authenticate("bob", "n3w-password!") is not None


def test_login_in_chromium_on_a_phone(ps: ProviderServer, pw: Any) -> None:
    app, _ = ps.oidc.provider.store.add_client("phone-app", [f"{ps.url}/callback"], "openid dicomweb.read",
                                                ["authorization_code"], public=True, hospital="h1")
    with tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True, viewport={"width": 390, "height": 844},
            is_mobile=True, has_touch=True, locale="zh-CN")
        try:
            page = browser.new_page()
            page.goto(authorize_url(ps, app, f"{ps.url}/callback"))
            assert page.locator("h2").inner_text() == "登录"
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390  # no sideways scrolling on a phone
            box = page.locator("button[type=submit]").bounding_box()
            assert box and box["height"] >= 44  # a thumb-sized target
            page.screenshot(path=str(Path(tempfile.gettempdir()) / "yunying-login.png"))
            page.fill("#username", "bob")
            page.fill("#password", "bob-first-pass")
            page.locator("button[type=submit]").tap()
            page.wait_for_url("**/login/password?**")
            page.fill("#current", "bob-first-pass")
            page.fill("#new", "another-pass-1")
            page.fill("#confirm", "another-pass-1")
            page.locator("button[type=submit]").tap()
            page.wait_for_url("**/callback?**")
            assert page.locator("#code").inner_text() == "True"
        finally:
            browser.close()


def test_logout_ends_the_session_and_returns_only_to_a_registered_app(ps: ProviderServer) -> None:
    with httpx.Client(trust_env=False) as http:
        url = authorize_url(ps, ps.public_id, "https://viewer.example/callback")
        nxt = parse_qs(urlsplit(http.get(url).headers["location"]).query)["next"][0]
        http.post(f"{ps.url}/login", data={"username": "alice", "password": "alice-password-1", "next": nxt})
        assert "code=" in http.get(url).headers["location"]  # signed in
        evil = http.get(f"{ps.url}/login/logout", params={"post_logout_redirect_uri": "https://evil.example/x"})
        assert evil.status_code == 303 and evil.headers["location"] == "/login"
        assert http.get(url).headers["location"].startswith("/login?")  # the session is gone
        http.post(f"{ps.url}/login", data={"username": "alice", "password": "alice-password-1", "next": nxt})
        back = http.get(f"{ps.url}/login/logout", params={"post_logout_redirect_uri": "https://viewer.example/"})
        assert back.status_code == 303 and back.headers["location"] == "https://viewer.example/"


def test_password_guessing_from_one_address_is_throttled(ps: ProviderServer) -> None:
    """One throttle per address for every guessable check: after `address_failures` wrong answers
    the address waits, whichever account it tries, even with the right password."""
    with httpx.Client(trust_env=False, headers={"Accept-Language": "en"}) as http:
        for i in range(20):
            r = http.post(f"{ps.url}/login", data={"username": f"user{i}", "password": "guess"})
            assert r.status_code == 401 and "Wrong username or password" in r.text
        r = http.post(f"{ps.url}/login", data={"username": "alice", "password": "alice-password-1"})
        assert r.status_code == 429 and "Too many failed attempts from this network" in r.text
        assert 14 * 60 < int(r.headers["retry-after"]) <= 15 * 60
        assert "yunying_session" not in r.cookies
