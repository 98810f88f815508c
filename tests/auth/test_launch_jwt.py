"""Launch links as a JWT of the hospital's own OIDC provider: `yunying serve` with a trusted
issuer whose JWKS a local server publishes; httpx without following redirects."""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from benchmarks.net import YunyingServer
from tests.auth import plain
from tests.auth.test_oidc_tokens import THEIR_ISSUER, Jwks, hs256, unsigned

STUDY = "1.2.826.0.1.3680043.99.7.1"
PASSWORD = "launch-jwt-password-1"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[YunyingServer, Jwks, str]]:
    from tests.conftest import start_with_env
    from yunying.auth import directory
    from yunying.auth.store import open_store

    idp = Jwks()
    trusted = [{"issuer": THEIR_ISSUER, "jwks_uri": idp.url, "audience": "yunying-archive", "hospital": "default"}]
    srv = start_with_env(tmp_path_factory.mktemp("launchjwt") / "data",
                         YUNYING_OIDC_TRUSTED_ISSUERS=json.dumps(trusted))
    try:
        store = open_store(srv.data_dir)
        directory.add_hospital(store, "h2", "Hospital Two")
        for user, hospital in (("dr-wang", "default"), ("dr-off", "default"), ("dr-other", "h2")):
            directory.add_user(store, user, hospital, PASSWORD, roles=[("doctor", None)], must_change_password=False)
        directory.update_user(store, "dr-off", disabled=True)
        issuer = plain.get(srv.http_url + "/.well-known/openid-configuration").json()["issuer"]
        yield srv, idp, f"{issuer}/launch"
    finally:
        srv.stop()
        idp.httpd.shutdown()


def launch_token(idp: Jwks, aud: str, **claims: Any) -> str:
    """What the hospital's provider signs: user, study, a fresh jti, five minutes at most."""
    body: dict[str, Any] = {"aud": aud, "preferred_username": "dr-wang", "study_instance_uid": STUDY,
                            "jti": uuid.uuid4().hex, **claims}
    return idp.token(**body)


def launch(srv: YunyingServer, token: str) -> httpx.Response:
    return plain.get(srv.http_url + "/launch", params={"jwt": token})


def test_a_provider_jwt_opens_the_study_once(setup: tuple[YunyingServer, Jwks, str]) -> None:
    srv, idp, aud = setup
    token = launch_token(idp, aud)
    first = launch(srv, token)
    assert first.status_code == 303, first.text
    assert first.headers["location"] == f"/viewer/?study={STUDY}"
    assert "httponly" in first.headers["set-cookie"].lower()
    jar = {"Cookie": f"yy_session={first.cookies['yy_session']}"}
    me = plain.get(srv.http_url + "/api/auth/me", headers=jar).json()
    assert me["kind"] == "launch" and me["id"] == "dr-wang" and me["hospital"] == "default"
    again = launch(srv, token)
    assert again.status_code == 401 and "used" in again.json()["error"]
    assert "set-cookie" not in again.headers
    by_accession = launch(srv, launch_token(idp, aud, study_instance_uid=None, accession_number="ACC-7"))
    assert by_accession.status_code == 303 and by_accession.headers["location"] == "/viewer/?accession=ACC-7"


def test_bad_launch_jwts_are_refused_with_a_reason(setup: tuple[YunyingServer, Jwks, str]) -> None:
    srv, idp, aud = setup
    now = int(time.time())
    claims = {"iss": THEIR_ISSUER, "aud": aud, "iat": now, "exp": now + 120, "jti": "j-forged",
              "preferred_username": "dr-wang", "study_instance_uid": STUDY}
    public_pem = idp.keys[-1].as_pem(private=False)
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    refused = {
        "not a JWT": ("garbage", "JWT"),
        "wrong key": (launch_token(idp, aud, key=stranger), "signature"),
        "alg none": (unsigned({"alg": "none", "kid": "k1"}, claims), "signature"),
        "HS256 with their public key": (hs256({"alg": "HS256", "kid": "k1"}, claims, public_pem), "signature"),
        "an access token, not a launch link": (launch_token(idp, "yunying-archive"), "aud"),
        "wrong issuer": (launch_token(idp, aud, iss="https://idp.elsewhere.example"), "issuer"),
        "expired": (launch_token(idp, aud, iat=now - 400, exp=now - 100), "claims"),
        "issued in the future": (launch_token(idp, aud, iat=now + 200, exp=now + 300), "future"),
        "lives over 5 minutes": (launch_token(idp, aud, iat=now, exp=now + 301), "longer"),
        "no jti": (launch_token(idp, aud, jti=None), "jti"),
        "no study": (launch_token(idp, aud, study_instance_uid=None), "study"),
        "unknown user": (launch_token(idp, aud, preferred_username="nobody"), "user"),
        "disabled user": (launch_token(idp, aud, preferred_username="dr-off"), "user"),
        "user of another hospital": (launch_token(idp, aud, preferred_username="dr-other"), "user"),
    }
    for name, (token, reason) in refused.items():
        r = launch(srv, token)
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert reason in r.json()["error"], (name, r.json())
        assert "set-cookie" not in r.headers and "location" not in r.headers, name
    assert launch(srv, launch_token(idp, aud)).status_code == 303  # the same user, a good token
