"""The provider inside `yunying serve`: a user logs in with code + PKCE and reads DICOMweb with
the JWT; forged tokens get 401 + WWW-Authenticate from the DICOMweb endpoints; a system client
uses client credentials; revocation takes effect on the next request."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from benchmarks.net import REPO_ROOT, YunyingServer, start_yunying
from tests.auth.oidc_harness import REDIRECT, login_and_get_code, pkce
from tests.auth.test_oidc_tokens import b64, hs256, unsigned

PASSWORD = "dr-li-password-1"


def oauth_cli(data: Path, *args: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "yunying.cli", "oauth", "clients", *args, "--data", str(data)],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True).stdout
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[YunyingServer, dict[str, str]]]:
    from yunying.auth import directory, secpolicy
    from yunying.auth.store import open_store

    data = tmp_path_factory.mktemp("oidc") / "data"
    srv = start_yunying(data)
    try:
        store = open_store(data)
        directory.add_user(store, "dr-li", "default", PASSWORD, roles=[("doctor", None)], must_change_password=False)
        directory.add_user(store, "clerk", "default", PASSWORD, roles=[("audit_admin", None)],
                           must_change_password=False)
        # these tests are about tokens: the clerk (an audit admin) signs in without the second factor
        # the policy requires of administrators by default (tests/auth/test_security_policy.py)
        secpolicy.save(store, {"totp_admins": False}, "test")
        ids = {"viewer": oauth_cli(data, "add", "viewer", "--public", "--redirect-uri", REDIRECT,
                                   "--scope", "openid profile dicomweb.read download")["client_id"]}
        system = oauth_cli(data, "add", "pacs", "--confidential", "--scope", "dicomweb.read dicomweb.write")
        ids["pacs"], ids["pacs_secret"] = system["client_id"], system["client_secret"].split()[0]
        yield srv, ids
    finally:
        srv.stop()


def user_tokens(srv: YunyingServer, client_id: str, user: str = "dr-li",
                scope: str = "openid profile dicomweb.read") -> dict[str, str]:
    verifier, challenge = pkce()
    with httpx.Client(timeout=30, trust_env=False) as http:
        code = login_and_get_code(http, srv.http_url, client_id, challenge, user, PASSWORD, scope)
        r = http.post(f"{srv.http_url}/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": client_id,
            "code_verifier": verifier})
    assert r.status_code == 200, r.text
    return r.json()


def qido(srv: YunyingServer, token: str) -> httpx.Response:
    return httpx.get(f"{srv.dicomweb_url}/studies", headers={"Authorization": f"Bearer {token}"}, trust_env=False)


def test_a_user_logs_in_and_reads_dicomweb_with_the_jwt(archive: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, ids = archive
    tokens = user_tokens(srv, ids["viewer"])
    assert qido(srv, tokens["access_token"]).status_code in (200, 204)
    info = httpx.get(f"{srv.http_url}/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 200 and info.json()["sub"] == "dr-li" and info.json()["roles"] == ["doctor"]
    # STOW needs dicomweb.write, which neither the doctor nor the token has: 403, not 401
    r = httpx.post(f"{srv.dicomweb_url}/studies", content=b"x", headers={
        "Authorization": f"Bearer {tokens['access_token']}", "Content-Type": "multipart/related; type=\"application/dicom\"; boundary=b"})
    assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"]


def test_a_token_without_the_read_scope_or_role_is_403(archive: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, ids = archive
    narrow = user_tokens(srv, ids["viewer"], scope="openid profile")
    assert qido(srv, narrow["access_token"]).status_code == 403
    clerk = user_tokens(srv, ids["viewer"], user="clerk")
    assert clerk["scope"] == "openid profile"  # the audit admin holds no dicomweb.read to be granted
    assert qido(srv, clerk["access_token"]).status_code == 403


def test_revocation_and_reuse_are_felt_by_the_next_dicomweb_request(
        archive: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, ids = archive
    tokens = user_tokens(srv, ids["viewer"])
    assert qido(srv, tokens["access_token"]).status_code in (200, 204)  # cached by the authorization point now
    r = httpx.post(f"{srv.http_url}/oauth/revoke", data={"token": tokens["access_token"], "client_id": ids["viewer"]})
    assert r.status_code == 200
    refused = qido(srv, tokens["access_token"])
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]

    tokens = user_tokens(srv, ids["viewer"])
    form = {"grant_type": "refresh_token", "client_id": ids["viewer"], "refresh_token": tokens["refresh_token"]}
    rotated = httpx.post(f"{srv.http_url}/oauth/token", data=form).json()
    assert qido(srv, rotated["access_token"]).status_code in (200, 204)
    assert httpx.post(f"{srv.http_url}/oauth/token", data=form).status_code == 400  # reuse: family revoked
    assert qido(srv, rotated["access_token"]).status_code == 401


def test_client_credentials_for_a_pacs(archive: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, ids = archive
    r = httpx.post(f"{srv.http_url}/oauth/token", data={"grant_type": "client_credentials"},
                   auth=(ids["pacs"], ids["pacs_secret"]))
    assert r.status_code == 200, r.text
    assert qido(srv, r.json()["access_token"]).status_code in (200, 204)


def test_forged_tokens_are_refused_by_dicomweb(archive: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, ids = archive
    good = user_tokens(srv, ids["viewer"])["access_token"]
    keys = KeySet.import_key_set(httpx.get(f"{srv.http_url}/oauth/jwks").json())
    real = jwt.decode(good, keys, algorithms=["ES256"])
    header, claims = dict(real.header), dict(real.claims)
    public = keys.keys[0]
    assert isinstance(public, ECKey)
    now = int(time.time())
    other = ECKey.generate_key("P-256", private=True)
    forged = {
        "wrong key": jwt.encode(header, claims, other, algorithms=["ES256"]),
        "alg none": unsigned({**header, "alg": "none"}, claims),
        "HS256 with the public key": hs256({**header, "alg": "HS256"}, claims, public.as_pem(private=False)),
        "wrong issuer": jwt.encode(header, {**claims, "iss": "https://idp.elsewhere.example"}, other,
                                   algorithms=["ES256"]),
        "wrong audience (signature kept)": good.split(".")[0] + "." + b64(json.dumps(
            {**claims, "aud": "another-api"}).encode()) + "." + good.split(".")[2],
        "expired (signature kept)": good.split(".")[0] + "." + b64(json.dumps(
            {**claims, "exp": now - 3600}).encode()) + "." + good.split(".")[2],
    }
    for name, token in forged.items():
        r = qido(srv, token)
        assert r.status_code == 401, name
        assert 'Bearer realm="yunying", error="invalid_token"' == r.headers["www-authenticate"], name
    assert qido(srv, good).status_code in (200, 204)


def test_discovery_is_open_and_cors_answers_registered_origins(
        archive: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, _ = archive
    doc = httpx.get(f"{srv.http_url}/.well-known/openid-configuration", headers={"Origin": "https://viewer.example"})
    assert doc.status_code == 200 and doc.json()["issuer"] == srv.http_url
    assert doc.headers["access-control-allow-origin"] == "https://viewer.example"
    other = httpx.get(f"{srv.http_url}/.well-known/openid-configuration", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    pre = httpx.options(f"{srv.http_url}/oauth/token", headers={
        "Origin": "https://viewer.example", "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "https://viewer.example"


def test_the_first_super_admin_changes_the_one_time_password_on_the_login_page(tmp_path: Path) -> None:
    from tests.conftest import start_with_env

    srv = start_with_env(tmp_path / "data", YUNYING_ADMIN_PASSWORD="first-start-secret")
    try:
        client = oauth_cli(srv.data_dir, "add", "admin-page", "--public", "--redirect-uri", REDIRECT,
                           "--scope", "openid profile admin")["client_id"]
        _, challenge = pkce()
        q = httpx.QueryParams({"response_type": "code", "client_id": client, "redirect_uri": REDIRECT,
                               "scope": "openid admin", "code_challenge": challenge,
                               "code_challenge_method": "S256"})
        with httpx.Client(base_url=srv.http_url, trust_env=False) as http:
            nxt = f"/oauth/authorize?{q}"
            r = http.post("/login", data={"username": "admin", "password": "first-start-secret", "next": nxt,
                                          "lang": "en"})
            assert r.status_code == 303 and r.headers["location"].startswith("/login/password")
            page = http.get(r.headers["location"])
            csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
            form = {"current": "first-start-secret", "csrf": csrf, "next": nxt, "lang": "en"}
            short = http.post("/login/password", data={**form, "new": "short", "confirm": "short"})
            assert short.status_code == 400 and "not accepted" in short.text  # auth's rule, said on the page
            assert "at least 8 characters" in short.text
            assert http.get(nxt).headers["location"].startswith("/login/password")  # still no code
            done = http.post("/login/password", data={**form, "new": "A-much-longer-one", "confirm": "A-much-longer-one"})
            # a super admin must set up a second factor before any code is issued
            assert done.status_code == 303 and done.headers["location"].startswith("/login/totp/setup?")
            assert http.get(nxt).headers["location"].startswith("/login/totp/setup")
            setup = http.get(done.headers["location"])
            secret = setup.text.split('<code id="secret">')[1].split("<")[0].replace(" ", "")
            csrf = setup.text.split('name="csrf" value="')[1].split('"')[0]
            on = http.post("/login/totp/setup", data={"csrf": csrf, "next": nxt, "code": pyotp.TOTP(secret).now()})
            assert on.status_code == 200 and on.text.count("<li><code>") == 10  # the recovery codes, once
            code = http.get(nxt)
            assert code.status_code == 302 and "code=" in code.headers["location"]
    finally:
        srv.stop()


def test_a_hospital_provider_token_reads_dicomweb(tmp_path: Path) -> None:
    from tests.auth.test_oidc_tokens import THEIR_ISSUER, Jwks
    from tests.conftest import start_with_env
    from yunying.auth import directory
    from yunying.auth.store import open_store

    idp = Jwks()
    trusted = [{"issuer": THEIR_ISSUER, "jwks_uri": idp.url, "audience": "yunying-archive", "hospital": "default",
                "role_map": {"Radiologe": "radiologist"}}]
    srv = start_with_env(tmp_path / "data", YUNYING_OIDC_TRUSTED_ISSUERS=json.dumps(trusted))
    try:
        directory.add_user(open_store(srv.data_dir), "alice", "default", PASSWORD, roles=[("doctor", None)],
                           must_change_password=False)
        assert qido(srv, idp.token()).status_code in (200, 204)  # alice, our doctor
        assert qido(srv, idp.token(preferred_username="dr-x", roles=["Radiologe"])).status_code in (200, 204)
        assert qido(srv, idp.token(preferred_username="dr-y", roles=["Pförtner"])).status_code == 403  # no role
        for bad in (idp.token(aud="other"), idp.token(exp=int(time.time()) - 300),
                    unsigned({"alg": "none", "kid": "k1"}, {"iss": THEIR_ISSUER, "aud": "yunying-archive",
                                                            "exp": int(time.time()) + 60, "sub": "x"})):
            r = qido(srv, bad)
            assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    finally:
        srv.stop()
        idp.httpd.shutdown()


def test_the_admin_api_registers_and_removes_clients(archive: tuple[YunyingServer, dict[str, str]]) -> None:
    srv, ids = archive
    api = f"{srv.http_url}/api/admin/oauth-clients"
    with httpx.Client(headers=srv.headers, trust_env=False) as admin:
        made = admin.post(api, json={"name": "RIS", "public": False, "scope": "dicomweb.read"})
        assert made.status_code == 201, made.text
        client_id, secret = made.json()["client_id"], made.json()["client_secret"]
        assert client_id in [c["client_id"] for c in admin.get(api).json()]
        assert "secret" not in admin.get(api).text
        token = httpx.post(f"{srv.http_url}/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(client_id, secret)).json()["access_token"]
        assert qido(srv, token).status_code in (200, 204)
        for bad in ({"name": "x"}, {"name": "x", "public": True, "scope": "openid"}, [1, 2]):
            r = admin.post(api, json=bad)
            assert r.status_code == 400 and r.json()["status"] == 400, r.text
        assert admin.delete(f"{api}/{client_id}").status_code == 204
        assert admin.delete(f"{api}/{client_id}").status_code == 404
    assert qido(srv, token).status_code == 401  # its tokens died with it
    doctor = user_tokens(srv, ids["viewer"])["access_token"]
    assert httpx.get(api, headers={"Authorization": f"Bearer {doctor}"}).status_code == 403
