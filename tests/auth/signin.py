"""Signing a user in the way a browser does, over HTTP: the built-in page client `yunying-web`,
code + PKCE, the login page and each of its steps (second factor, password change, second-factor
set-up), then the token endpoint. What the server answered at each step is kept for assertions."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pyotp

from tests.auth.oidc_harness import pkce
from tests.auth.plain import TIMEOUT
from yunying.auth.oidc.tokens import SCOPES

CLIENT_ID = "yunying-web"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SECRET = re.compile(r'<code id="secret">([A-Z2-7 ]+)</code>')
CODES = re.compile(r"<li><code>([a-z0-9-]+)</code></li>")


class SignInRefused(AssertionError):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code} at {response.request.url.path}")
        self.response = response


@dataclass
class SignedIn:
    tokens: dict[str, Any]
    http: httpx.Client  # holds the login session cookie
    totp_secret: str = ""
    recovery: list[str] = field(default_factory=list)
    setup_code: str = ""  # the code that turned TOTP on
    steps: list[str] = field(default_factory=list)  # the login pages passed, in order

    @property
    def access_token(self) -> str:
        return str(self.tokens["access_token"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def authorize_params(base: str, challenge: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": base + "/admin/", "state": "s1",
            "scope": " ".join(sorted(SCOPES)),  # as our pages ask: a token carries what the user holds
            "code_challenge": challenge, "code_challenge_method": "S256"}


def sign_in(base: str, username: str, password: str, *, new_password: str = "", totp_secret: str = "",
            code: str = "", http: httpx.Client | None = None) -> SignedIn:
    """Sign in through /login to the end; SignInRefused at the first page that refuses."""
    http = http or httpx.Client(timeout=TIMEOUT)
    verifier, challenge = pkce()
    r = http.get(f"{base}/oauth/authorize", params=authorize_params(base, challenge))
    out = SignedIn({}, http, totp_secret)
    if r.status_code == 302 and r.headers["location"].startswith("/login?"):
        nxt = parse_qs(urlsplit(r.headers["location"]).query)["next"][0]
        r = http.post(f"{base}/login", data={"username": username, "password": password, "next": nxt})
    for _ in range(6):  # each step of the login, until the authorization endpoint answers
        if r.status_code not in (302, 303):
            raise SignInRefused(r)
        location = r.headers["location"]
        path = urlsplit(location).path
        if path == "/oauth/authorize":
            r = http.get(base + location)
            continue
        if path.startswith(base + "/admin/") or location.startswith(base + "/admin/"):
            break
        out.steps.append(path)
        nxt = parse_qs(urlsplit(location).query).get("next", [""])[0]
        page = http.get(base + location)
        csrf = CSRF.search(page.text)
        if csrf is None:
            raise SignInRefused(page)
        form = {"csrf": csrf.group(1), "next": nxt}
        if path == "/login/totp":
            r = http.post(base + path, data={**form, "code": code or pyotp.TOTP(out.totp_secret).now()})
        elif path == "/login/password":
            r = http.post(base + path, data={**form, "current": password, "new": new_password,
                                             "confirm": new_password})
        elif path == "/login/totp/setup":
            shown = SECRET.search(page.text)
            assert shown, page.text[:2000]
            out.totp_secret = shown.group(1).replace(" ", "")
            out.setup_code = pyotp.TOTP(out.totp_secret).now()
            r = http.post(base + path, data={**form, "code": out.setup_code})
            if r.status_code != 200:
                raise SignInRefused(r)
            out.recovery = CODES.findall(r.text)
            r = http.get(base + nxt) if nxt else r
            if r.status_code == 200:
                return out
        else:
            raise SignInRefused(r)
    query = parse_qs(urlsplit(r.headers["location"]).query)
    tokens = http.post(f"{base}/oauth/token", data={
        "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": base + "/admin/",
        "client_id": CLIENT_ID, "code_verifier": verifier})
    if tokens.status_code != 200:
        raise SignInRefused(tokens)
    out.tokens = tokens.json()
    return out


def refresh(base: str, http: httpx.Client, refresh_token: str) -> httpx.Response:
    return http.post(f"{base}/oauth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token,
                                                  "client_id": CLIENT_ID})


def login_page_post(base: str, username: str, password: str, http: httpx.Client | None = None) -> httpx.Response:
    """One POST of the login form (a next URL into the authorization endpoint), not followed."""
    http = http or httpx.Client(timeout=TIMEOUT)
    _, challenge = pkce()
    nxt = "/oauth/authorize?" + urlencode(authorize_params(base, challenge))
    return http.post(f"{base}/login", data={"username": username, "password": password, "next": nxt})


def sign_in_page(page: Any, username: str, password: str, new_password: str | None = None) -> None:
    """In Chromium, at /login: sign in, and change the password when the provider insists."""
    page.wait_for_url(re.compile(r"/login\?"))
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    if new_password is not None:
        page.wait_for_url(re.compile(r"/login/password\?"))
        page.fill("#current", password)
        page.fill("#new", new_password)
        page.fill("#confirm", new_password)
        page.click("button[type=submit]")


def set_up_totp_in_page(page: Any) -> tuple[str, list[str]]:
    """In Chromium, at the set-up page the login sends an administrator to: read the key, type the
    app's code, keep the recovery codes, continue. Returns (secret, recovery codes)."""
    page.wait_for_url(re.compile(r"/login/totp/setup\?"))
    assert page.is_visible("img.qr")
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]  # fits a phone
    secret = page.inner_text("#secret").replace(" ", "")
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("button[type=submit]")
    page.wait_for_selector("#recovery-codes li")
    codes = [c.strip() for c in page.locator("#recovery-codes li").all_inner_texts()]
    page.click("#continue")
    return secret, codes
