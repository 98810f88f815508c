"""Passwords, sessions and the second factor through a real server (issue 12 parts 4-5): expiry,
idle and absolute timeouts (the server's clock moved through YUNYING_CLOCK_FILE, no sleeping),
TOTP mandatory for administrators, replayed, forged and recovery codes, the security admin's
policy and its audit record, the three administrators kept apart."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pyotp
import pytest

from benchmarks.net import YunyingServer
from tests.auth import plain
from tests.auth.oidc_harness import pkce
from tests.auth.signin import (
    SignedIn,
    SignInRefused,
    authorize_params,
    login_page_post,
    refresh,
    sign_in,
)
from tests.conftest import start_with_env

PASSWORD = "Temp-pass-1234"
NEW = "Fresh-Pass-2026"
MIN = 60


@pytest.fixture(scope="module")
def clock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clock") / "offset"
    path.write_text("0")
    return path


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, clock: Path) -> Iterator[YunyingServer]:
    s = start_with_env(tmp_path_factory.mktemp("secpolicy") / "data", YUNYING_CLOCK_FILE=str(clock))
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def real_time(clock: Path) -> Iterator[None]:
    clock.write_text("0")
    yield
    clock.write_text("0")


def move_clock(clock: Path, seconds: float) -> None:
    clock.write_text(str(seconds))


def make_user(srv: YunyingServer, username: str, role: str) -> None:
    r = plain.post(srv.http_url + "/api/admin/users", headers=srv.headers, json={
        "username": username, "password": PASSWORD, "roles": [{"role": role}]})
    assert r.status_code == 201, r.text


_signed: dict[tuple[str, str], SignedIn] = {}


def signed_in(srv: YunyingServer, username: str, role: str) -> SignedIn:
    """A user signed in once through every step (new password; TOTP set up for administrators),
    kept per server: a test that needs a user's password or session changed makes its own user."""
    key = (srv.http_url, username)
    if key not in _signed:
        make_user(srv, username, role)
        _signed[key] = sign_in(srv.http_url, username, PASSWORD, new_password=NEW)
    return _signed[key]


def code_at(secret: str, offset: float) -> str:
    """The authenticator's code at the server's clock (wall clock + offset)."""
    return pyotp.TOTP(secret).at(time.time() + offset)



def change_password(srv: YunyingServer, http: httpx.Client, current: str, new: str, lang: str = "en") -> httpx.Response:
    """The password page of a signed-in session (voluntary change, or a forced one)."""
    page = http.get(f"{srv.http_url}/login/password?lang={lang}")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    return http.post(srv.http_url + "/login/password", data={"csrf": csrf, "current": current, "new": new,
                                                             "confirm": new, "lang": lang})


def test_a_password_expires_after_the_policys_days_and_its_rules_hold(srv: YunyingServer, clock: Path) -> None:
    signed_in(srv, "dr.old", "doctor")
    move_clock(clock, 89 * 86400)
    assert sign_in(srv.http_url, "dr.old", NEW).steps == []  # 89 days: still fine
    move_clock(clock, 91 * 86400)
    first = login_page_post(srv.http_url, "dr.old", NEW)
    assert first.status_code == 303 and first.headers["location"].startswith("/login/password?")
    with httpx.Client(timeout=plain.TIMEOUT, cookies=first.cookies) as http:
        page = http.get(srv.http_url + first.headers["location"] + "&lang=en")
        assert "older than the security policy allows" in page.text
        for again, why in ((NEW, "must differ"), ("Weak-1", "at least 8 characters"),
                           ("alllowercase", "at least 3 of"), ("My-dr.old-Pass1", "must not contain your user name")):
            r = change_password(srv, http, NEW, again)
            assert r.status_code == 400 and why in r.text, (again, r.text[-600:])
        zh = change_password(srv, http, NEW, "Weak-1", lang="zh-CN")
        assert "至少需要 8 个字符" in zh.text
        done = change_password(srv, http, NEW, "Renewed-Pass-91")
        assert done.status_code == 303 and done.headers["location"].startswith("/login/done")
        # none of the last five passwords again (the one-time password and NEW are among them)
        for earlier in (NEW, PASSWORD):
            reused = change_password(srv, http, "Renewed-Pass-91", earlier)
            assert reused.status_code == 400 and "last 5 passwords" in reused.text


def authorize(srv: YunyingServer, http: httpx.Client) -> str:
    """Where the authorization endpoint sends this browser: the app with a code, or a login page."""
    params = authorize_params(srv.http_url, pkce()[1])
    return str(http.get(f"{srv.http_url}/oauth/authorize", params=params).headers["location"])


def test_idle_timeout_ends_the_login_session_and_the_refresh_tokens(srv: YunyingServer, clock: Path) -> None:
    signed_in(srv, "dr.idle", "doctor")
    s = sign_in(srv.http_url, "dr.idle", NEW)
    move_clock(clock, 20 * MIN)
    r = refresh(srv.http_url, s.http, s.tokens["refresh_token"])
    assert r.status_code == 200, r.text
    assert "code=" in authorize(srv, s.http)  # activity at +20 min: the login session goes on
    move_clock(clock, 45 * MIN)  # 25 minutes since: within 30
    r = refresh(srv.http_url, s.http, r.json()["refresh_token"])
    assert r.status_code == 200, r.text
    assert "code=" in authorize(srv, s.http)
    move_clock(clock, 80 * MIN)  # 35 idle minutes: both are over
    late = refresh(srv.http_url, s.http, r.json()["refresh_token"])
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
    assert urlsplit(authorize(srv, s.http)).path == "/login"


def test_absolute_timeout_ends_even_an_active_session(srv: YunyingServer, clock: Path) -> None:
    sec = signed_in(srv, "sec.clock", "security_admin")
    put = plain.request("PUT", srv.http_url + "/api/admin/security-policy", headers=sec.headers,
                        json={"session_absolute_hours": 1})
    assert put.status_code == 200, put.text
    try:
        signed_in(srv, "dr.busy", "doctor")
        s = sign_in(srv.http_url, "dr.busy", NEW)
        token = s.tokens["refresh_token"]
        for minutes in (25, 50):  # active every 25 minutes: never idle
            move_clock(clock, minutes * MIN)
            r = refresh(srv.http_url, s.http, token)
            assert r.status_code == 200, (minutes, r.text)
            token = r.json()["refresh_token"]
            assert "code=" in authorize(srv, s.http)
        move_clock(clock, 61 * MIN)
        assert refresh(srv.http_url, s.http, token).status_code == 400
        assert urlsplit(authorize(srv, s.http)).path == "/login"
    finally:
        move_clock(clock, 0)
        put = plain.request("PUT", srv.http_url + "/api/admin/security-policy", headers=sec.headers,
                            json={"session_absolute_hours": 12})
        assert put.status_code == 200


def test_administrators_must_set_up_totp_and_use_it(srv: YunyingServer, clock: Path) -> None:
    make_user(srv, "sec.li", "security_admin")
    half = login_page_post(srv.http_url, "sec.li", PASSWORD)
    with httpx.Client(timeout=plain.TIMEOUT, cookies=half.cookies) as http:
        changed = change_password(srv, http, PASSWORD, NEW)
        assert changed.status_code == 303 and changed.headers["location"].startswith("/login/totp/setup?")
        # the session may not authorize before the second factor is set up: no code, back to set-up
        assert authorize(srv, http).startswith("/login/totp/setup")
    first = sign_in(srv.http_url, "sec.li", NEW)
    assert first.steps == ["/login/totp/setup"] and len(first.recovery) == 10 and first.tokens
    secret = first.totp_secret

    # the next sign-in asks for the code; the code the set-up used is refused (replay)
    with pytest.raises(SignInRefused) as refused:
        sign_in(srv.http_url, "sec.li", NEW, code=first.setup_code)
    assert refused.value.response.status_code == 401 and "已使用" in refused.value.response.text
    with pytest.raises(SignInRefused):  # forged: another secret's code
        sign_in(srv.http_url, "sec.li", NEW, code=code_at(pyotp.random_base32(), 0))
    move_clock(clock, 30)  # the authenticator's next code
    fresh = code_at(secret, 30)
    ok = sign_in(srv.http_url, "sec.li", NEW, code=fresh)
    assert ok.steps == ["/login/totp"] and ok.tokens
    with pytest.raises(SignInRefused):  # the same code twice, even within its 30 seconds
        sign_in(srv.http_url, "sec.li", NEW, code=fresh)

    # a recovery code works once
    spare = first.recovery[0]
    assert sign_in(srv.http_url, "sec.li", NEW, code=spare).tokens
    with pytest.raises(SignInRefused):
        sign_in(srv.http_url, "sec.li", NEW, code=spare)
    status = plain.get(srv.http_url + "/api/admin/users/sec.li/second-factor", headers=ok.headers).json()
    assert status == {"username": "sec.li", "enrolled": True, "recovery_codes_left": 9}


def test_wrong_codes_lock_the_account(srv: YunyingServer, clock: Path) -> None:
    signed = signed_in(srv, "audit.wu", "audit_admin")
    auditor = signed_in(srv, "audit.zhao", "audit_admin").headers  # set up at the real time (its codes)
    move_clock(clock, 3600)  # a new throttle window for this address
    for _ in range(4):
        with pytest.raises(SignInRefused) as wrong:
            sign_in(srv.http_url, "audit.wu", NEW, code="000000")
        assert wrong.value.response.status_code == 401
    with pytest.raises(SignInRefused) as locked:  # the fifth wrong answer locks the account
        sign_in(srv.http_url, "audit.wu", NEW, code="000001")
    assert locked.value.response.status_code == 423
    right = login_page_post(srv.http_url, "audit.wu", NEW)  # even the right password, for now
    assert right.status_code == 423 and int(right.headers["retry-after"]) > 14 * MIN
    move_clock(clock, 3600 + 16 * MIN)
    assert sign_in(srv.http_url, "audit.wu", NEW, code=code_at(signed.totp_secret, 3600 + 16 * MIN)).tokens
    trail = plain.get(srv.http_url + "/api/audit/records", headers=auditor, params={"action": "lockout"}).json()
    assert any(r["principal_id"] == "audit.wu" and r["outcome"] == "refused" for r in trail)
    logins = plain.get(srv.http_url + "/api/audit/records", headers=auditor,
                       params={"action": "login", "user": "audit.wu"}).json()
    assert any('"factor":"totp"' in r["detail"] and r["outcome"] == "refused" for r in logins)


def test_the_security_policy_belongs_to_the_security_admin_and_is_audited(srv: YunyingServer) -> None:
    sec = signed_in(srv, "sec.wang", "security_admin")
    auditor = signed_in(srv, "audit.zhao", "audit_admin")
    signed_in(srv, "dr.rule", "doctor")  # set up under the default rules (NEW has 15 characters)
    url = srv.http_url + "/api/admin/security-policy"
    assert plain.get(url, headers=sec.headers).json()["policy"]["password_min_length"] == 8
    for body in ({"password_min_length": 3}, {"password_min_length": "12"}, {"totp_admins": "no"},
                 {"no_such": 1}, {"session_idle_minutes": 100000}):
        bad = plain.request("PUT", url, headers=sec.headers, json=body)
        assert bad.status_code == 400 and set(bad.json()) == {"status", "error"}, body
    # the system administrator (admin) and the audit administrator may read it, not change it
    assert plain.request("PUT", url, headers=srv.headers, json={"password_min_length": 6}).status_code == 403
    assert plain.request("PUT", url, headers=auditor.headers, json={"password_min_length": 6}).status_code == 403
    assert plain.get(url, headers=auditor.headers).status_code == 200
    done = plain.request("PUT", url, headers=sec.headers, json={"password_min_length": 12, "password_history": 5})
    assert done.status_code == 200 and done.json()["policy"]["password_min_length"] == 12
    try:
        trail = plain.get(srv.http_url + "/api/audit/records", headers=auditor.headers,
                          params={"action": "security.policy"}).json()
        assert trail and trail[0]["principal_id"] == "sec.wang" and trail[0]["outcome"] == "success"
        assert '"password_min_length": {"from": 8, "to": 12}' in trail[0]["detail"].replace('":{', '": {') \
            .replace(',"to"', ', "to"').replace('{"from":', '{"from": ').replace('"to":', '"to": ')
        assert "password_history" not in trail[0]["detail"]  # unchanged settings are not listed
        # the new rule counts at once on the login page
        s = sign_in(srv.http_url, "dr.rule", NEW)
        short = change_password(srv, s.http, NEW, "Eleven-ch-1")
        assert short.status_code == 400 and "at least 12 characters" in short.text
    finally:
        assert plain.request("PUT", url, headers=sec.headers, json={"password_min_length": 8}).status_code == 200


def test_the_three_administrators_are_apart_and_see_no_patient_data(srv: YunyingServer) -> None:
    system = signed_in(srv, "sys.chen", "super_admin")
    sec = signed_in(srv, "sec.wang", "security_admin")
    auditor = signed_in(srv, "audit.zhao", "audit_admin")
    for who in (system, sec, auditor):
        assert plain.get(srv.dicomweb_url + "/studies", headers=who.headers).status_code == 403
    # no user may hold two of the three duties
    for role in ("security_admin", "audit_admin"):
        r = plain.request("PUT", f"{srv.http_url}/api/admin/users/sys.chen/roles/default/{role}", headers=srv.headers)
        assert r.status_code == 403 and "would hold both" in r.json()["error"], r.text
    both = plain.post(srv.http_url + "/api/admin/roles", headers=srv.headers,
                      json={"name": "sec_and_users", "permissions": ["security.manage", "users.manage"]})
    assert both.status_code == 403
    # the system administrator manages users, not the security policy or the trail
    assert plain.get(srv.http_url + "/api/admin/users", headers=system.headers).status_code == 200
    assert plain.request("DELETE", srv.http_url + "/api/admin/users/sec.li/second-factor",
                         headers=system.headers).status_code == 403
    assert plain.get(srv.http_url + "/api/audit/records", headers=system.headers).status_code == 403
    assert plain.get(srv.http_url + "/api/admin/users", headers=auditor.headers).status_code == 403
    assert plain.get(srv.http_url + "/api/admin/users", headers=sec.headers).status_code == 403


def test_the_mlps_statement_follows_the_live_policy(srv: YunyingServer) -> None:
    sec = signed_in(srv, "sec.wang", "security_admin")
    url = srv.http_url + "/api/admin/security-policy"

    def authentication() -> dict[str, str]:
        controls = plain.get(srv.http_url + "/api/security/statement", headers=sec.headers).json()
        return next(c for c in controls if c["clause"] == "8.1.4.1")

    assert authentication()["status"] == "met"
    weak = {"totp_admins": False, "lockout_failures": 10, "session_idle_minutes": 60}
    assert plain.request("PUT", url, headers=sec.headers, json={"totp_admins": False}).status_code == 200
    try:
        one = authentication()
        assert one["status"] == "partly" and "a second factor for administrators" in one["how_en"]
        assert plain.request("PUT", url, headers=sec.headers, json=weak).status_code == 200
        assert authentication()["status"] == "not met"
    finally:
        plain.request("PUT", url, headers=sec.headers, json={"totp_admins": True, "lockout_failures": 5,
                                                             "session_idle_minutes": 30})
    assert authentication()["status"] == "met"


def test_one_throttle_per_address_for_passwords_codes_and_access_codes(srv: YunyingServer) -> None:
    """Wrong access codes of shared links and wrong passwords count together, per client address."""
    signed_in(srv, "dr.net", "doctor")
    other = httpx.Client(timeout=plain.TIMEOUT, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    for i in range(10):
        r = other.post(srv.http_url + "/api/auth/exchange", json={"token": f"ycap_guess{i}", "code": "0000"})
        assert r.status_code == 401, r.text
    for i in range(10):
        r = login_page_post(srv.http_url, f"nobody{i}", "guess", http=other)
        assert r.status_code == 401
    blocked = other.post(srv.http_url + "/api/auth/exchange", json={"token": "ycap_x", "code": "0000"})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 14 * MIN
    assert set(blocked.json()) == {"status", "error"}
    page = login_page_post(srv.http_url, "dr.net", NEW, http=other)  # even a right password
    assert page.status_code == 429 and "Retry-After" in page.headers
    assert sign_in(srv.http_url, "dr.net", NEW).tokens  # another address is not affected


def test_second_factor_secrets_are_sealed_at_rest(srv: YunyingServer) -> None:
    enrolled = signed_in(srv, "sec.seal", "security_admin")
    assert len(enrolled.totp_secret) >= 16
    raw = b"".join(p.read_bytes() for p in Path(srv.data_dir).glob("app.sqlite*"))
    assert enrolled.totp_secret.encode() not in raw and b"s1.k1." in raw
    assert all(code.replace("-", "").encode() not in raw for code in enrolled.recovery)


def test_a_reset_ends_the_users_sessions(srv: YunyingServer) -> None:
    signed_in(srv, "dr.reset", "doctor")
    s = sign_in(srv.http_url, "dr.reset", NEW)
    reset = plain.post(srv.http_url + "/api/admin/users/dr.reset/password", headers=srv.headers)
    assert reset.status_code == 200
    assert refresh(srv.http_url, s.http, s.tokens["refresh_token"]).status_code == 400
    assert urlsplit(authorize(srv, s.http)).path == "/login"
    assert plain.get(srv.dicomweb_url + "/studies", headers=s.headers).status_code == 401  # its grant is revoked
