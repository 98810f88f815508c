"""The provider over real HTTP (uvicorn + httpx): code + PKCE, refresh rotation and reuse
detection, revocation, introspection, userinfo, client credentials, and its errors."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.auth.oidc_harness import (
    REDIRECT,
    ProviderServer,
    login_and_get_code,
    pkce,
    provider_server,
)


@pytest.fixture
def ps(tmp_path: Path) -> Iterator[ProviderServer]:
    with provider_server(tmp_path) as srv:
        yield srv


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20, trust_env=False) as c:
        yield c


def _code_tokens(ps: ProviderServer, http: httpx.Client) -> dict[str, str]:
    verifier, challenge = pkce()
    code = login_and_get_code(http, ps.url, ps.public_id, challenge)
    r = http.post(f"{ps.url}/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": ps.public_id, "code_verifier": verifier})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()


def test_discovery_and_jwks_describe_the_provider(ps: ProviderServer, http: httpx.Client) -> None:
    doc = http.get(f"{ps.url}/.well-known/openid-configuration").json()
    assert doc["issuer"] == ps.url
    assert doc["code_challenge_methods_supported"] == ["S256"]
    jwks = http.get(doc["jwks_uri"]).json()
    assert [k["kty"] for k in jwks["keys"]] == ["EC"] and "d" not in jwks["keys"][0]


def test_code_flow_with_pkce_gives_a_short_signed_jwt(ps: ProviderServer, http: httpx.Client) -> None:
    tokens = _code_tokens(ps, http)
    assert tokens["token_type"] == "Bearer" and 0 < int(tokens["expires_in"]) <= 900
    keys = KeySet.import_key_set(http.get(f"{ps.url}/oauth/jwks").json())
    at = jwt.decode(tokens["access_token"], keys, algorithms=["ES256"])
    assert at.header["typ"] == "at+jwt" and at.header["kid"] == keys.keys[0].kid
    claims = at.claims
    assert claims["iss"] == ps.url and claims["aud"] == ps.url and claims["sub"] == "u-alice"
    assert claims["hospital"] == "h1" and claims["roles"] == ["doctor"]
    assert claims["scope"] == "openid profile dicomweb.read" and claims["exp"] - claims["iat"] <= 900
    assert claims["jti"]
    idt = jwt.decode(tokens["id_token"], keys, algorithms=["ES256"]).claims
    assert idt["aud"] == [ps.public_id] and idt["nonce"] == "n-1" and idt["sub"] == "u-alice"

    probe = http.get(f"{ps.url}/probe", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert probe.json() == {"kind": "user", "id": "u-alice", "hospital": "h1",
                            "permissions": ["dicomweb.read"], "roles": ["doctor"]}
    # an ID token is no access token (RFC 9068 typ)
    assert http.get(f"{ps.url}/probe", headers={"Authorization": f"Bearer {tokens['id_token']}"}).status_code == 401

    info = http.get(f"{ps.url}/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 200 and info.json()["preferred_username"] == "alice"


def test_a_code_is_used_once_and_a_second_use_revokes_what_it_gave(ps: ProviderServer, http: httpx.Client) -> None:
    verifier, challenge = pkce()
    code = login_and_get_code(http, ps.url, ps.public_id, challenge)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": ps.public_id, "code_verifier": verifier}
    first = http.post(f"{ps.url}/oauth/token", data=form)
    assert first.status_code == 200
    again = http.post(f"{ps.url}/oauth/token", data=form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    auth = {"Authorization": f"Bearer {first.json()['access_token']}"}
    assert http.get(f"{ps.url}/probe", headers=auth).status_code == 401


def test_pkce_is_required_and_checked(ps: ProviderServer, http: httpx.Client) -> None:
    params = {"response_type": "code", "client_id": ps.public_id, "redirect_uri": REDIRECT, "scope": "openid",
              "state": "s"}
    r = http.get(f"{ps.url}/oauth/authorize", params=params)  # no code_challenge: back to the app with an error
    assert r.status_code == 302 and "error=invalid_request" in r.headers["location"]
    r = http.get(f"{ps.url}/oauth/authorize", params={**params, "code_challenge": "x" * 43,
                                                      "code_challenge_method": "plain"})
    assert r.status_code == 302 and "error=invalid_request" in r.headers["location"]
    _, challenge = pkce()
    code = login_and_get_code(http, ps.url, ps.public_id, challenge)
    wrong, _ = pkce()
    r = http.post(f"{ps.url}/oauth/token", data={"grant_type": "authorization_code", "code": code,
                                                 "redirect_uri": REDIRECT, "client_id": ps.public_id,
                                                 "code_verifier": wrong})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_unknown_client_or_redirect_uri_is_never_redirected_to(ps: ProviderServer, http: httpx.Client) -> None:
    _, challenge = pkce()
    base = {"response_type": "code", "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256"}
    r = http.get(f"{ps.url}/oauth/authorize", params={**base, "client_id": "nope", "redirect_uri": REDIRECT})
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"
    r = http.get(f"{ps.url}/oauth/authorize", params={**base, "client_id": ps.public_id,
                                                      "redirect_uri": "https://evil.example/cb"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_refresh_rotates_and_reuse_revokes_the_family(ps: ProviderServer, http: httpx.Client) -> None:
    tokens = _code_tokens(ps, http)
    r1 = http.post(f"{ps.url}/oauth/token", data={"grant_type": "refresh_token", "client_id": ps.public_id,
                                                  "refresh_token": tokens["refresh_token"]})
    assert r1.status_code == 200, r1.text
    rotated = r1.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    auth = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert http.get(f"{ps.url}/probe", headers=auth).status_code == 200
    # the old refresh token again: a thief or a replay; the whole family dies
    reuse = http.post(f"{ps.url}/oauth/token", data={"grant_type": "refresh_token", "client_id": ps.public_id,
                                                     "refresh_token": tokens["refresh_token"]})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert http.get(f"{ps.url}/probe", headers=auth).status_code == 401
    newer = http.post(f"{ps.url}/oauth/token", data={"grant_type": "refresh_token", "client_id": ps.public_id,
                                                     "refresh_token": rotated["refresh_token"]})
    assert newer.status_code == 400 and newer.json()["error"] == "invalid_grant"


def test_revocation_and_introspection(ps: ProviderServer, http: httpx.Client) -> None:
    tokens = _code_tokens(ps, http)
    basic = (ps.system_id, ps.system_secret)
    r = http.post(f"{ps.url}/oauth/introspect", data={"token": tokens["access_token"]}, auth=basic)
    assert r.status_code == 200 and r.json()["active"] is True and r.json()["sub"] == "u-alice"
    r = http.post(f"{ps.url}/oauth/introspect", data={"token": tokens["refresh_token"]}, auth=basic)
    assert r.json()["active"] is True and r.json()["token_type"] == "refresh_token"
    # a public client may not introspect
    r = http.post(f"{ps.url}/oauth/introspect", data={"token": tokens["access_token"], "client_id": ps.public_id})
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"
    # the app revokes its access token: the very next request fails
    r = http.post(f"{ps.url}/oauth/revoke", data={"token": tokens["access_token"], "client_id": ps.public_id})
    assert r.status_code == 200
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert http.get(f"{ps.url}/probe", headers=auth).status_code == 401
    assert http.post(f"{ps.url}/oauth/introspect", data={"token": tokens["access_token"]},
                     auth=basic).json() == {"active": False}
    # revoking the refresh token ends the grant
    r = http.post(f"{ps.url}/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": ps.public_id})
    assert r.status_code == 200
    r = http.post(f"{ps.url}/oauth/token", data={"grant_type": "refresh_token", "client_id": ps.public_id,
                                                 "refresh_token": tokens["refresh_token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_client_credentials_for_systems(ps: ProviderServer, http: httpx.Client) -> None:
    r = http.post(f"{ps.url}/oauth/token", data={"grant_type": "client_credentials", "scope": "dicomweb.read"},
                  auth=(ps.system_id, ps.system_secret))
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json() and r.json()["scope"] == "dicomweb.read"
    probe = http.get(f"{ps.url}/probe", headers={"Authorization": f"Bearer {r.json()['access_token']}"}).json()
    assert probe["kind"] == "system" and probe["id"] == ps.system_id and probe["permissions"] == ["dicomweb.read"]
    bad = http.post(f"{ps.url}/oauth/token", data={"grant_type": "client_credentials"},
                    auth=(ps.system_id, "wrong"))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    public = http.post(f"{ps.url}/oauth/token", data={"grant_type": "client_credentials", "client_id": ps.public_id})
    assert public.status_code in (400, 401) and public.json()["error"] in ("invalid_client", "unauthorized_client")


@pytest.mark.parametrize("form", [
    {}, {"grant_type": "password", "username": "a", "password": "b"}, {"grant_type": "authorization_code"},
    {"grant_type": "refresh_token", "refresh_token": "yr_nothing"}, {"grant_type": "x" * 5000},
])
def test_bad_token_requests_are_rfc6749_errors(ps: ProviderServer, http: httpx.Client,
                                              form: dict[str, str]) -> None:
    r = http.post(f"{ps.url}/oauth/token", data={**form, "client_id": ps.public_id})
    assert r.status_code in (400, 401), r.text
    assert r.headers["content-type"] == "application/json" and r.json()["error"]


def test_userinfo_without_or_with_a_bad_token_is_401(ps: ProviderServer, http: httpx.Client) -> None:
    r = http.get(f"{ps.url}/oauth/userinfo")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = http.get(f"{ps.url}/oauth/userinfo", headers={"Authorization": "Bearer a.b.c"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


@pytest.mark.parametrize("method,path,kw", [
    ("GET", "/oauth/authorize", {}),
    ("GET", "/oauth/authorize?response_type=token&client_id=x", {}),
    ("GET", "/oauth/authorize?response_type=code&client_id=%FF%FE", {}),
    ("POST", "/oauth/authorize", {"content": b"\xff\xfe",
                                  "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
    ("GET", "/oauth/token", {}),
    ("POST", "/oauth/token", {"json": {"grant_type": "client_credentials"}}),
    ("POST", "/oauth/token", {"content": b"grant_type=client_credentials",
                              "headers": {"Authorization": "Basic !!!",
                                          "Content-Type": "application/x-www-form-urlencoded"}}),
    ("POST", "/oauth/token", {"content": b"a=" + b"x" * 20_000,
                              "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
    ("POST", "/oauth/token", {"content": b"grant_type=authorization_code&code=c&code=d",
                              "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
    ("POST", "/oauth/revoke", {"data": {}}),
    ("POST", "/oauth/revoke", {"data": {"token": "x", "token_type_hint": "bogus", "client_id": "nope"}}),
    ("POST", "/oauth/introspect", {"data": {"token": "x"}}),
    ("POST", "/oauth/userinfo", {"headers": {"Authorization": "Bearer e30.e30.e30"}}),
    ("GET", "/oauth/userinfo", {"headers": {"Authorization": "Bearer " + "eyJ" * 400 + ".x.y"}}),
    ("POST", "/login", {}),
    ("POST", "/login", {"data": {"username": "alice", "password": "x" * 10_000}}),
    ("GET", "/login/password", {}),
    ("POST", "/login/password", {"data": {"csrf": "x"}}),
    ("POST", "/login/logout", {"headers": {"Cookie": "yunying_session=forged"}}),
    ("GET", "/login/logout?post_logout_redirect_uri=https://evil.example/", {}),
])
def test_bad_requests_never_get_a_5xx(ps: ProviderServer, http: httpx.Client, method: str, path: str,
                                      kw: dict[str, Any]) -> None:
    r = http.request(method, ps.url + path, **kw)
    assert r.status_code < 500, (r.status_code, r.text[:200])
    if path.startswith("/oauth/") and r.status_code >= 400 and r.status_code != 405:
        assert r.json()["error"], r.text


def test_prompt_none_without_a_session_answers_login_required(ps: ProviderServer, http: httpx.Client) -> None:
    _, challenge = pkce()
    r = http.get(f"{ps.url}/oauth/authorize", params={
        "response_type": "code", "client_id": ps.public_id, "redirect_uri": REDIRECT, "scope": "openid",
        "prompt": "none", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"})
    assert r.status_code == 302 and r.headers["location"].startswith(REDIRECT)
    assert "error=login_required" in r.headers["location"] and "state=s" in r.headers["location"]
