"""Forged and foreign tokens: ours and a hospital's own provider (a local JWKS server).

Each issuer's algorithms are pinned, so `alg: none`, HS256 signed with the public key, a wrong
key, issuer or audience, and an expired token are all refused with 401."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.auth.oidc_harness import ProviderServer, provider_server

THEIR_ISSUER = "https://idp.hospital-two.example"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    head = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return head + "." + b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


class Jwks:
    """A hospital's provider: an RSA key and a JWKS endpoint on a free port."""

    def __init__(self) -> None:
        self.keys = [RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)]
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"keys": [k.as_dict(private=False) for k in owner.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"

    def token(self, key: RSAKey | None = None, alg: str = "RS256", **claims: Any) -> str:
        key = key or self.keys[-1]
        now = int(time.time())
        body = {"iss": THEIR_ISSUER, "aud": "yunying-archive", "iat": now, "exp": now + 300,
                "sub": "ext-1", "preferred_username": "alice", "scope": "openid dicomweb.read", **claims}
        return jwt.encode({"alg": alg, "kid": key.kid}, body, key, algorithms=[alg])


@pytest.fixture(scope="module")
def idp() -> Iterator[Jwks]:
    srv = Jwks()
    yield srv
    srv.httpd.shutdown()


@pytest.fixture
def ps(tmp_path: Path, idp: Jwks) -> Iterator[ProviderServer]:
    trusted = [{"issuer": THEIR_ISSUER, "jwks_uri": idp.url, "audience": "yunying-archive", "hospital": "h1",
                "role_map": {"Radiologe": "radiologist"}}]
    with provider_server(tmp_path, trusted) as srv:
        yield srv


def probe(ps: ProviderServer, token: str) -> httpx.Response:
    return httpx.get(f"{ps.url}/probe", headers={"Authorization": f"Bearer {token}"}, trust_env=False)


def client_token(ps: ProviderServer) -> str:
    r = httpx.post(f"{ps.url}/oauth/token", data={"grant_type": "client_credentials"},
                   auth=(ps.system_id, ps.system_secret), trust_env=False)
    return str(r.json()["access_token"])


def test_forged_copies_of_our_tokens_are_refused(ps: ProviderServer) -> None:
    good = client_token(ps)
    assert probe(ps, good).status_code == 200
    real = jwt.decode(good, ps.oidc.provider.keys.published, algorithms=["ES256"])
    header, claims = dict(real.header), dict(real.claims)
    public = ps.oidc.provider.keys.current
    other = ECKey.generate_key("P-256", private=True)
    forged = {
        "wrong key": jwt.encode(header, claims, other, algorithms=["ES256"]),
        "alg none": unsigned({**header, "alg": "none"}, claims),
        "HS256 with the public key (PEM)": hs256({**header, "alg": "HS256"}, claims, public.as_pem(private=False)),
        "HS256 with the public key (JWK)": hs256({**header, "alg": "HS256"}, claims,
                                                 json.dumps(public.as_dict(private=False)).encode()),
        "wrong audience": jwt.encode(header, {**claims, "aud": "someone-else"}, public, algorithms=["ES256"]),
        "expired": jwt.encode(header, {**claims, "exp": int(time.time()) - 60}, public, algorithms=["ES256"]),
        "more scope than granted": good.rsplit(".", 1)[0].rsplit(".", 1)[0] + "." + b64(
            json.dumps({**claims, "scope": "admin"}).encode()) + "." + good.rsplit(".", 1)[1],
        "unknown issuer": jwt.encode(header, {**claims, "iss": "https://elsewhere.example"}, public,
                                     algorithms=["ES256"]),
        "not JSON": "eyJhbGciOi.eyJpc3Mi.sig",
    }
    for name, token in forged.items():
        r = probe(ps, token)
        assert r.status_code == 401, name
        assert r.headers["www-authenticate"].startswith("Bearer"), name


def test_a_trusted_hospital_provider_token_maps_to_our_user(ps: ProviderServer, idp: Jwks) -> None:
    r = probe(ps, idp.token())
    assert r.status_code == 200, r.text
    assert r.json() == {"kind": "user", "id": "u-alice", "hospital": "h1", "permissions": ["dicomweb.read"],
                        "roles": ["doctor"]}


def test_a_trusted_provider_user_unknown_here_gets_mapped_roles(ps: ProviderServer, idp: Jwks) -> None:
    r = probe(ps, idp.token(preferred_username="dr-wang", roles=["Radiologe", "Hausmeister"]))
    assert r.status_code == 200, r.text
    assert r.json() == {"kind": "user", "id": "h1:dr-wang", "hospital": "h1", "permissions": ["dicomweb.read"],
                        "roles": ["radiologist"]}


def test_forged_hospital_provider_tokens_are_refused(ps: ProviderServer, idp: Jwks) -> None:
    key = idp.keys[0]
    now = int(time.time())
    claims = {"iss": THEIR_ISSUER, "aud": "yunying-archive", "exp": now + 300, "preferred_username": "alice"}
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    forged = {
        "wrong key": idp.token(key=stranger),
        "alg none": unsigned({"alg": "none", "kid": "k1"}, claims),
        "HS256 with their public key": hs256({"alg": "HS256", "kid": "k1"}, claims, key.as_pem(private=False)),
        "RS512 where RS256 is pinned": idp.token(alg="RS512"),
        "wrong audience": idp.token(aud="another-app"),
        "expired": idp.token(exp=now - 120),
        "no username": idp.token(preferred_username=None),
    }
    for name, token in forged.items():
        assert probe(ps, token).status_code == 401, name


def test_a_rotated_hospital_key_is_fetched(ps: ProviderServer, idp: Jwks) -> None:
    assert probe(ps, idp.token()).status_code == 200  # the set is cached now
    idp.keys.append(RSAKey.generate_key(2048, parameters={"kid": "k2"}, private=True))
    try:
        assert probe(ps, idp.token(key=idp.keys[-1])).status_code == 200
    finally:
        idp.keys.pop()


def test_a_trusted_issuer_with_a_symmetric_algorithm_is_a_setting_error(tmp_path: Path) -> None:
    from yunying.auth.oidc.config import oidc_config
    from yunying.settings import SettingError, Settings

    bad = Settings(data=tmp_path, oidc_trusted_issuers=[{"issuer": "https://x", "jwks_uri": "https://x/j",
                                                          "audience": "a", "algorithms": ["HS256"]}])
    with pytest.raises(SettingError, match="HS256"):
        oidc_config(bad)
    with pytest.raises(SettingError, match="oidc_access_token_minutes"):
        oidc_config(Settings(data=tmp_path, oidc_access_token_minutes=60))
