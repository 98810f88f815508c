"""OHIF logs in through Yunying's OpenID provider (authorization code + PKCE) in headless
Chromium, then lists and paints a study with the user's JWT: no API key anywhere in the browser
path (the OHIF proxy forwards OHIF's own Authorization header)."""
from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.net import YunyingServer, start_yunying
from conformance.data import build_test_data
from conformance.ohif import OhifServer, serve_ohif
from conformance.runner import Context
from tests.conformance.test_ohif import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PAINT_TIMEOUT_S,
    PAINTED_PIXELS_JS,
    ohif_dist,
)

__all__ = ["ohif_dist"]  # the module fixture, shared
PASSWORD = "ohif-doctor-pass-1"
SCOPE = "openid profile dicomweb.read"


@dataclass
class Session:
    srv: YunyingServer
    ohif: OhifServer
    page: Any
    data: Any  # conformance.data.TestData (not imported: pytest would try to collect it)
    diagnostics: list[str]


@contextmanager
def ohif_signed_in(tmp_path: Path, dist: Path, user: str, hospital: str, pw: Any) -> Iterator[Session]:
    """An archive holding study A (the default hospital's), OHIF configured with our provider, and
    Chromium signed in as `user` (a doctor of `hospital`) through our login page."""
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
        if hospital != "default":
            directory.add_hospital(store, hospital, hospital)
        directory.add_user(store, user, hospital, PASSWORD, roles=[("doctor", None)], must_change_password=False)
        oidc = {"authority": srv.http_url, "client_id": "ohif", "redirect_uri": "/callback", "scope": SCOPE,
                "post_logout_redirect_uri": "/"}
        with serve_ohif(dist, srv.dicomweb_url, oidc=oidc) as ohif, \
                tempfile.TemporaryDirectory() as profile:
            OAuthStore(store).add_client("OHIF", [ohif.url + "/callback"], SCOPE,
                                         ["authorization_code", "refresh_token"], public=True,
                                         hospital="default", client_id="ohif")
            browser = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1280, "height": 900})
            try:
                page = browser.new_page()
                diagnostics: list[str] = []
                page.on("console", lambda m: diagnostics.append(m.text[:300]))
                page.goto(ohif.url + "/", wait_until="load")
                page.wait_for_url(f"{srv.http_url}/login?**", timeout=60_000)   # our login page
                page.fill("#username", user)
                page.fill("#password", PASSWORD)
                page.locator("button[type=submit]").click()
                page.wait_for_url(f"{ohif.url}/**", timeout=60_000)              # back in OHIF
                yield Session(srv, ohif, page, data, diagnostics)
            finally:
                browser.close()
    finally:
        srv.stop()


def test_ohif_logs_in_with_code_and_pkce_and_paints_the_study(tmp_path: Path, ohif_dist: Path, pw: Any) -> None:
    with ohif_signed_in(tmp_path, ohif_dist, "dr-wang", "default", pw) as s:
        page = s.page
        sent_token: list[bool] = []
        page.on("request", lambda r: sent_token.append("authorization" in r.headers)
                if "/dicomweb/" in r.url else None)
        row = page.get_by_text("Zhang, San").first
        try:
            row.wait_for(timeout=60_000)                                      # the list, with the token
        except Exception:
            print(page.url, *s.diagnostics[-40:], sep="\n")
            raise
        row.click()
        page.get_by_text(s.data.patient_id("A")).first.wait_for(timeout=30_000)
        page.get_by_role("button", name="Basic Viewer").first.click()
        painted, deadline = 0, time.monotonic() + PAINT_TIMEOUT_S
        while time.monotonic() < deadline and painted == 0:
            painted = max(page.evaluate(PAINTED_PIXELS_JS) or [0])
            time.sleep(0.5)
        page.screenshot(path=str(Path(tempfile.gettempdir()) / "ohif-oidc-viewer.png"))
        log = list(s.ohif.log)
        # the proxy injects no key here: without OHIF's token the archive refuses
        anonymous = httpx.get(s.ohif.url + "/dicomweb/studies", trust_env=False).status_code
    assert painted > 0, "viewport canvas stayed black"
    assert sent_token and all(sent_token), "OHIF sent DICOMweb requests without its token"
    assert not [r for r in log if r.status >= 400], [(r.path[:80], r.status) for r in log if r.status >= 400]
    assert anonymous == 401


def test_ohif_user_of_another_hospital_finds_nothing(tmp_path: Path, ohif_dist: Path, pw: Any) -> None:
    """The study belongs to the default hospital (stored with its key); a doctor of h2 logs in
    through OHIF: the list shows nothing and opening the study by UID finds no metadata (404)."""
    with ohif_signed_in(tmp_path, ohif_dist, "dr-zhao", "h2", pw) as s:
        page, ohif, uid = s.page, s.ohif, s.data.study_uid("A")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(r.path.startswith("/studies?") for r in ohif.log):
            time.sleep(0.25)                                                  # the list's QIDO, with the token
        studies = [r for r in ohif.log if r.path.startswith("/studies?")]
        page.goto(f"{ohif.url}/viewer?StudyInstanceUIDs={uid}", wait_until="load")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("/series" in r.path for r in ohif.log):
            time.sleep(0.25)
        time.sleep(2)
        assert page.get_by_text("Zhang, San").count() == 0
        token = page.evaluate("""() => { const k = Object.keys(sessionStorage)
            .find(k => k.startsWith('oidc.user:')); return JSON.parse(sessionStorage[k]).access_token; }""")
        log = list(ohif.log)
        # what OHIF asked, asked again with its own token: an empty list, and no such study (404)
        bearer = {"Authorization": f"Bearer {token}"}
        listed = httpx.get(s.srv.dicomweb_url + "/studies", headers=bearer, trust_env=False)
        metadata = httpx.get(f"{s.srv.dicomweb_url}/studies/{uid}/metadata", headers=bearer, trust_env=False)
        mine = httpx.get(s.srv.dicomweb_url + "/studies", headers=s.srv.headers, trust_env=False).json()
    assert studies and all(r.status in (200, 204) for r in studies), studies
    assert not [r for r in log if r.status == 200 and ("/metadata" in r.path or "/frames/" in r.path)]
    assert listed.status_code == 204 or listed.json() == []
    assert metadata.status_code == 404
    assert len(mine) == 1  # the study is there, for its own hospital
