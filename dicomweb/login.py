"""The login page and the forced password change (zh-CN / en, from frontends/i18n).

The pages are server-rendered HTML forms, so they work without JavaScript in any phone
browser (WeChat's included). A successful login sets a session cookie (random, stored hashed)
that the authorization endpoint reads; a user who must change the password gets a session
that can do nothing but change it.
"""
from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from yunying.auth.oidc.provider import Provider
from yunying.auth.oidc.users import PasswordRefused

FRONTENDS = Path(__file__).resolve().parents[1] / "frontends"  # read as files: no import of frontends
LANGUAGES = ("zh-CN", "en")
COOKIE = "yunying_session"
FIELD = re.compile(r"\{\{(=?)([\w.]+)\}\}")
MAX_FORM = 16 * 1024


@lru_cache(maxsize=4)
def catalog(lang: str) -> dict[str, str]:
    return orjson.loads((FRONTENDS / "i18n" / f"{lang}.json").read_bytes())  # type: ignore[no-any-return]


@lru_cache(maxsize=4)
def template(name: str) -> str:
    return (FRONTENDS / "login" / name).read_text(encoding="utf-8")


def render(name: str, lang: str, values: dict[str, str], status: int = 200) -> HTMLResponse:
    """The fragment `name` inside page.html: `{{login.key}}` from the catalog, `{{=name}}` from values
    (HTML-escaped, except `message` and `body`, which are built here from escaped parts)."""
    texts = catalog(lang)
    title = "login.password.title" if name == "password.html" else "login.title"

    def filler(values: dict[str, str]) -> Callable[[re.Match[str]], str]:
        def fill(m: re.Match[str]) -> str:
            if m.group(1):
                value = values.get(m.group(2), "")
                return value if m.group(2) in ("message", "body") else html.escape(value)
            return html.escape(texts[m.group(2)])
        return fill

    body = FIELD.sub(filler(values), template(name))
    page = FIELD.sub(filler({"lang": lang, "title": texts[title], "body": body}), template("page.html"))
    # no form-action: Chromium applies it to the redirects after the post, i.e. back to the app
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
               "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src data:; frame-ancestors 'none'"}
    return HTMLResponse(page, status_code=status, headers=headers)


def language(request: Request, form: dict[str, str] | None = None) -> str:
    asked = (form or {}).get("lang") or request.query_params.get("lang") or request.cookies.get("yunying_lang")
    if asked in LANGUAGES:
        return asked
    accept = request.headers.get("accept-language", "").lower()
    return "en" if accept.startswith("en") else "zh-CN"  # hospitals in China: Chinese unless asked


def safe_next(value: str | None) -> str:
    """Where to go after login: only back into our authorization endpoint (no open redirect)."""
    if value and value.startswith("/oauth/authorize?") and "\\" not in value:
        return value
    return ""


def message(lang: str, key: str, extra: str = "") -> str:
    text = html.escape(catalog(lang)[key] + (" " + extra if extra else ""))
    return f'<p class="error" role="alert">{text}</p>'


async def read_form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    from urllib.parse import parse_qsl
    return dict(parse_qsl(body.decode("utf-8", "replace")))


class Throttle:
    """Password guessing: after MAX_FAILURES wrong passwords for one username from one address,
    that pair waits LOCK_SECONDS (per address, so nobody can lock a colleague out from elsewhere)."""

    MAX_FAILURES, LOCK_SECONDS = 5, 15 * 60

    def __init__(self) -> None:
        self.failures: dict[tuple[str, str], list[float]] = {}

    def locked(self, who: tuple[str, str]) -> bool:
        recent = [t for t in self.failures.get(who, []) if t > time.monotonic() - self.LOCK_SECONDS]
        self.failures[who] = recent
        return len(recent) >= self.MAX_FAILURES

    def failed(self, who: tuple[str, str]) -> None:
        if len(self.failures) > 100_000:  # a flood of made-up names must not grow memory without end
            self.failures.clear()
        self.failures.setdefault(who, []).append(time.monotonic())

    def passed(self, who: tuple[str, str]) -> None:
        self.failures.pop(who, None)


class LoginPages:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.throttle = Throttle()

    def login_form(self, lang: str, next_url: str, msg: str = "", username: str = "") -> HTMLResponse:
        other = "en" if lang == "zh-CN" else "zh-CN"
        switch = "/login?" + urlencode({"lang": other, **({"next": next_url} if next_url else {})})
        return render("login.html", lang, {"lang": lang, "next": next_url, "message": msg,
                                           "username": username, "switch_href": switch})

    async def get_login(self, request: Request) -> Response:
        lang = language(request)
        return self.login_form(lang, safe_next(request.query_params.get("next")))

    async def post_login(self, request: Request) -> Response:
        form = await read_form(request)
        lang, next_url = language(request, form), safe_next(form.get("next"))
        username, password = form.get("username", ""), form.get("password", "")
        who = (username, request.client.host if request.client else "")
        if self.throttle.locked(who):
            return self.login_form(lang, next_url, message(lang, "login.error.locked"), username)
        account = await asyncio.to_thread(self.provider.directory.authenticate, username, password) \
            if username and password else None
        if account is None or not account.active:
            self.throttle.failed(who)
            return self.login_form(lang, next_url, message(lang, "login.error.invalid"), username)
        self.throttle.passed(who)
        cookie = await asyncio.to_thread(self.provider.store.create_session, account.id,
                                         self.provider.config.session_seconds, account.must_change_password)
        target = ("/login/password?" + urlencode({"next": next_url, "lang": lang})
                  if account.must_change_password else next_url or "/login/done?" + urlencode({"lang": lang}))
        response = RedirectResponse(target, status_code=303)
        self.set_cookie(response, cookie)
        response.set_cookie("yunying_lang", lang, max_age=365 * 86400, samesite="lax", path="/")
        return response

    def set_cookie(self, response: Response, cookie: str) -> None:
        response.set_cookie(COOKIE, cookie, max_age=self.provider.config.session_seconds, httponly=True,
                            secure=self.provider.config.secure, samesite="lax", path="/")

    async def get_password(self, request: Request) -> Response:
        lang = language(request)
        session = await self.session(request)
        if session is None:
            return self.login_form(lang, safe_next(request.query_params.get("next")),
                                   message(lang, "login.error.expired"))
        return render("password.html", lang, {"lang": lang, "csrf": session.csrf, "message": "",
                                              "next": safe_next(request.query_params.get("next"))})

    async def post_password(self, request: Request) -> Response:
        form = await read_form(request)
        lang, next_url = language(request, form), safe_next(form.get("next"))
        cookie = request.cookies.get(COOKIE, "")
        session = await self.session(request)
        if session is None or form.get("csrf") != session.csrf:
            return self.login_form(lang, next_url, message(lang, "login.error.expired"))
        values = {"lang": lang, "csrf": session.csrf, "next": next_url}
        if form.get("new", "") != form.get("confirm", ""):
            return render("password.html", lang, {**values, "message": message(lang, "login.password.mismatch")})
        try:
            await asyncio.to_thread(self.provider.directory.change_password, session.user_id,
                                    form.get("current", ""), form.get("new", ""))
        except PasswordRefused as exc:
            return render("password.html", lang, {**values, "message": message(lang, "login.password.refused",
                                                                                str(exc))})
        await asyncio.to_thread(self.provider.store.password_changed, cookie)
        return RedirectResponse(next_url or "/login/done?" + urlencode({"lang": lang}), status_code=303)

    async def done(self, request: Request) -> Response:
        lang = language(request)
        return render("done.html", lang, {"lang": lang})

    async def session(self, request: Request):  # type: ignore[no-untyped-def]
        cookie = request.cookies.get(COOKIE)
        return await asyncio.to_thread(self.provider.store.get_session, cookie) if cookie else None

    async def logout(self, request: Request, back: str = "") -> Response:
        cookie = request.cookies.get(COOKIE)
        if cookie:
            await asyncio.to_thread(self.provider.store.end_session, cookie)
        response = RedirectResponse(back or "/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response
