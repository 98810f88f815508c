"""OHIF logs in through Yunying's OpenID provider (authorization code + PKCE) in headless
Chromium, then lists and paints a study with the user's JWT: no API key anywhere in the browser
path (the OHIF proxy forwards OHIF's own Authorization header)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.net import start_yunying
from conformance.data import build_test_data
from conformance.ohif import serve_ohif
from conformance.runner import Context
from tests.conformance.test_ohif import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PAINT_TIMEOUT_S,
    PAINTED_PIXELS_JS,
    ohif_dist,
    sync_api,
)

__all__ = ["ohif_dist"]  # the module fixture, shared
PASSWORD = "ohif-doctor-pass-1"


def test_ohif_logs_in_with_code_and_pkce_and_paints_the_study(tmp_path: Path, ohif_dist: Path) -> None:
    from yunying.auth import directory
    from yunying.auth.oidc.store import OAuthStore
    from yunying.auth.store import open_store

    srv = start_yunying(tmp_path / "data")
    try:
        data = build_test_data()
        ctx = Context(srv.dicomweb_url, None, data, api_key=srv.api_key)
        assert ctx.stow(data.studies["A"]).status_code == 200
        ctx.close()
        store = open_store(srv.data_dir)
        directory.add_user(store, "dr-wang", "default", PASSWORD, roles=[("doctor", None)],
                           must_change_password=False)
        oidc = {"authority": srv.http_url, "client_id": "ohif", "redirect_uri": "/callback",
                "scope": "openid profile dicomweb.read", "post_logout_redirect_uri": "/"}
        calls: list[tuple[str, int, bool]] = []
        with serve_ohif(ohif_dist, srv.dicomweb_url, oidc=oidc) as ohif, sync_api.sync_playwright() as pw, \
                tempfile.TemporaryDirectory() as profile:
            OAuthStore(store).add_client("OHIF", [ohif.url + "/callback"], oidc["scope"],
                                         ["authorization_code", "refresh_token"], public=True,
                                         hospital="default", client_id="ohif")
            browser = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1280, "height": 900})
            try:
                page = browser.new_page()
                page.on("request", lambda r: calls.append((r.url, 0, "authorization" in r.headers))
                        if "/dicomweb/" in r.url else None)
                console: list[str] = []
                page.on("console", lambda m: console.append(m.text[:300]))
                page.on("response", lambda r: console.append(f"{r.status} {r.request.method} {r.url[:150]}")
                        if "127.0.0.1" in r.url and not r.url.endswith((".js", ".css", ".wasm")) else None)
                page.goto(ohif.url + "/", wait_until="load")
                page.wait_for_url(f"{srv.http_url}/login?**", timeout=60_000)   # our login page
                page.fill("#username", "dr-wang")
                page.fill("#password", PASSWORD)
                page.locator("button[type=submit]").click()
                row = page.get_by_text("Zhang, San").first
                try:
                    row.wait_for(timeout=30_000)                                # back in OHIF, signed in
                except Exception:
                    print(page.url, *console[-60:], sep="\n")
                    page.screenshot(path="/tmp/ohif-oidc-fail.png")
                    raise
                row.click()
                page.get_by_text(data.patient_id("A")).first.wait_for(timeout=30_000)
                page.get_by_role("button", name="Basic Viewer").first.click()
                painted, deadline = 0, time.monotonic() + PAINT_TIMEOUT_S
                while time.monotonic() < deadline and painted == 0:
                    painted = max(page.evaluate(PAINTED_PIXELS_JS) or [0])
                    time.sleep(0.5)
                page.screenshot(path=str(Path(tempfile.gettempdir()) / "ohif-oidc-viewer.png"))
            finally:
                browser.close()
            log = list(ohif.log)
            # the proxy injects no key here: without OHIF's token the archive refuses
            anonymous = httpx.get(ohif.url + "/dicomweb/studies", trust_env=False).status_code
        assert painted > 0, "viewport canvas stayed black"
        assert calls and all(with_auth for _, _, with_auth in calls), "OHIF sent DICOMweb requests without its token"
        assert not [r for r in log if r.status >= 400], [(r.path[:80], r.status) for r in log if r.status >= 400]
        assert anonymous == 401
    finally:
        srv.stop()
