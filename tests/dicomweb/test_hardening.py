"""Response hardening (issue 12 part 8): security headers on every answer, a CSP on pages, and a
per-principal rate limit answering 429 with Retry-After."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from benchmarks.net import YunyingServer
from tests.conftest import start_with_env


def test_pages_carry_a_content_security_policy(server: YunyingServer) -> None:
    page = httpx.get(server.http_url + "/viewer/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    api = httpx.get(server.dicomweb_url + "/studies", headers=server.headers)
    assert "content-security-policy" not in api.headers  # JSON is not a page
    assert api.headers["referrer-policy"] == "no-referrer"
    assert api.headers["cross-origin-resource-policy"] == "same-origin"  # no CORS origins configured
    assert "strict-transport-security" not in api.headers  # only over TLS
    assert "server" not in api.headers and "server" not in page.headers  # no software named to a scanner
    assert api.headers["date"]  # RFC 9110 6.6.1: an origin server with a clock sends Date


def test_a_principal_beyond_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    srv = start_with_env(tmp_path / "data", YUNYING_RATE_LIMIT="2")  # 2/s, bursts of 20
    try:
        with httpx.Client(base_url=srv.dicomweb_url, headers=srv.headers, timeout=30) as c:
            answers = [c.get("/studies") for _ in range(40)]
        limited = [r for r in answers if r.status_code == 429]
        assert limited and len(limited) < 40 - 15
        assert int(limited[0].headers["retry-after"]) >= 1
        assert limited[0].json() == {"status": 429, "error": "too many requests: at most 2 a second"}
    finally:
        srv.stop()


def test_the_pages_run_under_their_csp(server: YunyingServer, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        for path in ("/viewer/", "/admin/", "/admin/audit/"):
            page.goto(server.http_url + path + "?lang=en")
            page.wait_for_timeout(1500)  # the modules ran: the catalog is applied
            assert page.evaluate("document.documentElement.lang") == "en", path
        assert not [e for e in errors if "Content Security Policy" in e], errors
    finally:
        context.close()
