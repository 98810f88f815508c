"""The one authorization point covers every route: walked from the built app, checked live."""
from __future__ import annotations

import httpx
import pytest

from benchmarks.net import YunyingServer
from tests.auth import plain
from tests.auth.conftest import sample_path
from yunying.auth.policy import OPEN, OPEN_ROUTES, RULES


def test_every_route_of_the_built_app_has_a_policy(built_routes: list[tuple[str, str]]) -> None:
    assert len(built_routes) > 30  # the DICOMweb surface alone has more
    missing = [(m, p) for m, p in built_routes if RULES.rule_for(m, sample_path(p)) is None]
    assert not missing, f"routes without a row in yunying/auth/policy.py: {missing}"


def test_open_routes_are_few_and_serve_no_images(built_routes: list[tuple[str, str]]) -> None:
    open_ones = [(m, p) for m, p in built_routes if (r := RULES.rule_for(m, sample_path(p))) and r.action == OPEN]
    assert all(not p.startswith("/dicomweb") for _, p in open_ones), open_ones
    assert len(OPEN_ROUTES) < 30


def test_every_route_refuses_without_a_token_except_the_open_ones(
        server: YunyingServer, built_routes: list[tuple[str, str]]) -> None:
    with httpx.Client(base_url=server.http_url, timeout=30) as anonymous:
        for method, template in built_routes:
            path = sample_path(template)
            resp = anonymous.request(method, path, content=b"{}")
            if (rule := RULES.rule_for(method, path)) and rule.action == OPEN:
                # not refused by the authorization point (a login form may answer a wrong password
                # with 401, as HTML and without a Bearer challenge)
                assert "bearer" not in resp.headers.get("www-authenticate", "").lower(), (method, path)
                assert resp.status_code != 401 or resp.headers["content-type"].startswith("text/html"), (method, path)
                continue
            assert resp.status_code == 401, (method, path, resp.status_code)
            assert resp.headers["www-authenticate"].startswith("Bearer"), (method, path)
            assert resp.json() == {"status": 401, "error": "authentication required"}


@pytest.mark.parametrize("token", ["yk_forged_0123456789abcdef", "x" * 300, "a.b.c", "ümlaut-token"])
def test_a_forged_token_is_401_invalid_token(server: YunyingServer, token: str) -> None:
    resp = plain.get(server.dicomweb_url + "/studies",
                     headers={"Authorization": f"Bearer {token}".encode()})
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]


def test_other_schemes_and_empty_bearer_are_401(server: YunyingServer) -> None:
    for value in ("Basic YWRtaW46YWRtaW4=", "Bearer", server.api_key):
        resp = plain.get(server.dicomweb_url + "/studies", headers={"Authorization": value})
        assert resp.status_code == 401, value


def test_an_unknown_url_is_404_for_an_identified_caller(server: YunyingServer) -> None:
    assert plain.get(server.http_url + "/no/such/thing", headers=server.headers).status_code == 404
    assert plain.get(server.http_url + "/no/such/thing").status_code == 401  # existence never leaks


def test_cors_preflight_needs_no_token(server: YunyingServer) -> None:
    resp = plain.options(server.dicomweb_url + "/studies", headers={
        "Origin": "https://viewer.example.org", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert resp.status_code != 401
