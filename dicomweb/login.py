"""The login page and the forced password change (zh-CN / en, from frontends/i18n).

The pages are server-rendered HTML forms, so they work without JavaScript in any phone
browser (WeChat's included). A successful login sets a session cookie (random, stored hashed)
that the authorization endpoint reads once it is complete: a session passes the second factor,
a forced password change and a required second-factor set-up first (its `stage`), and ends after
the security policy's idle and absolute times. Wrong passwords and codes count per account
(lockout) and per address (yunying.auth.throttle); refusals answer 401, 423 or 429, so the
audit trail records them as refused.
"""
from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from yunying import audit
from yunying.auth import secpolicy, throttle
from yunying.auth.oidc.provider import Provider
from yunying.auth.oidc.store import Session
from yunying.auth.oidc.users import Account, AccountLocked, PasswordRefused
from yunying.auth.store import Store

FRONTENDS = Path(__file__).resolve().parents[1] / "frontends"  # read as files: no import of frontends
LANGUAGES = ("zh-CN", "en")
COOKIE = "yunying_session"
FIELD = re.compile(r"\{\{(=?)([\w.]+)\}\}")
MAX_FORM = 16 * 1024
RAW = ("message", "body", "codes")  # built here from escaped parts
TITLES = {"password.html": "login.password.title", "totp.html": "login.totp.title",
          "setup.html": "login.setup.title", "recovery.html": "login.recovery.title"}
# where a session at each stage goes next (yunying.auth.oidc.tables.STAGES)
STAGE_PAGES = {"totp": "/login/totp", "password": "/login/password", "enroll": "/login/totp/setup"}


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
    title = TITLES.get(name, "login.title")

    def filler(values: dict[str, str]) -> Callable[[re.Match[str]], str]:
        def fill(m: re.Match[str]) -> str:
            if m.group(1):
                value = values.get(m.group(2), "")
                return value if m.group(2) in RAW else html.escape(value)
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


def text(lang: str, key: str, **params: object) -> str:
    out = catalog(lang)[key]
    for name, value in params.items():
        out = out.replace("{" + name + "}", str(value))
    return out


def message(lang: str, key: str, extra: str = "", **params: object) -> str:
    """An alert paragraph: the catalog's text for `key` (with {params}), then `extra`."""
    body = html.escape(text(lang, key, **params) + (" " + extra if extra else ""))
    return f'<p class="error" role="alert">{body}</p>'


async def read_form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    from urllib.parse import parse_qsl
    return dict(parse_qsl(body.decode("utf-8", "replace")))


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def minutes(seconds: int) -> int:
    return max(1, -(-seconds // 60))


def next_stage(account: Account, factor_done: bool) -> str:
    """What a signed-in user must do before the session may authorize: the second factor, a new
    password (one-time or expired), setting up a second factor the policy requires; "" when done."""
    if account.totp and not factor_done:
        return "totp"
    if account.must_change_password:
        return "password"
    if account.totp_required and not account.totp:
        return "enroll"
    return ""


def record(action: str, outcome: str, user: str, request: Request, **detail: object) -> None:
    """An audit record of a login step the HTTP classification does not name (second factor)."""
    audit.record(action, outcome, principal_kind="user", principal_id=user, client=client_address(request),
                 detail=orjson.dumps({"path": request.url.path, **detail}).decode())


class LoginPages:
    """The password step, the forced password change, and what every step shares."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    @property
    def store(self) -> Store:
        return self.provider.store.store

    def login_form(self, lang: str, next_url: str, msg: str = "", username: str = "", status: int = 200,
                   headers: dict[str, str] | None = None) -> HTMLResponse:
        other = "en" if lang == "zh-CN" else "zh-CN"
        switch = "/login?" + urlencode({"lang": other, **({"next": next_url} if next_url else {})})
        page = render("login.html", lang, {"lang": lang, "next": next_url, "message": msg,
                                           "username": username, "switch_href": switch}, status)
        page.headers.update(headers or {})
        return page

    async def throttled(self, request: Request, lang: str, next_url: str) -> Response | None:
        """The 429 page while this address waits (the one throttle of every guessable check)."""
        try:
            await asyncio.to_thread(throttle.check, self.store, client_address(request))
        except throttle.TooManyAttempts as exc:
            return self.login_form(lang, next_url, message(lang, "login.error.throttled",
                                                           minutes=minutes(exc.retry_after)),
                                   status=429, headers={"Retry-After": str(exc.retry_after)})
        return None

    async def failed(self, request: Request) -> None:
        await asyncio.to_thread(throttle.failed, self.store, client_address(request))

    def locked(self, lang: str, next_url: str, exc: AccountLocked, username: str = "") -> HTMLResponse:
        return self.login_form(lang, next_url, message(lang, "login.error.locked", minutes=minutes(exc.retry_after)),
                               username, status=423, headers={"Retry-After": str(exc.retry_after)})

    def go_on(self, stage: str, lang: str, next_url: str, cookie: str | None = None) -> Response:
        """Redirect to the page of `stage` (the app, or the done page, when complete)."""
        query = urlencode({"next": next_url, "lang": lang})
        target = f"{STAGE_PAGES[stage]}?{query}" if stage else next_url or "/login/done?" + urlencode({"lang": lang})
        response = RedirectResponse(target, status_code=303)
        if cookie is not None:  # a session cookie: no max-age, so it also ends with the browser
            response.set_cookie(COOKIE, cookie, httponly=True, secure=self.provider.config.secure,
                                samesite="lax", path="/")
            response.set_cookie("yunying_lang", lang, max_age=365 * 86400, samesite="lax", path="/")
        return response

    async def get_login(self, request: Request) -> Response:
        lang = language(request)
        return self.login_form(lang, safe_next(request.query_params.get("next")))

    async def post_login(self, request: Request) -> Response:
        form = await read_form(request)
        lang, next_url = language(request, form), safe_next(form.get("next"))
        username, password = form.get("username", ""), form.get("password", "")
        if (refused := await self.throttled(request, lang, next_url)) is not None:
            return refused
        try:
            account = await asyncio.to_thread(self.provider.directory.authenticate, username, password) \
                if username and password else None
        except AccountLocked as exc:
            await self.failed(request)
            return self.locked(lang, next_url, exc, username)
        if account is None or not account.active:
            await self.failed(request)
            return self.login_form(lang, next_url, message(lang, "login.error.invalid"), username, status=401)
        stage = next_stage(account, factor_done=False)
        cookie = await asyncio.to_thread(self.provider.store.create_session, account.id, stage)
        return self.go_on(stage, lang, next_url, cookie)

    async def session(self, request: Request, *stages: str) -> tuple[str, Session] | None:
        """(cookie, session) of a live session at one of `stages`."""
        cookie = request.cookies.get(COOKIE)
        session = await asyncio.to_thread(self.provider.store.get_session, cookie) if cookie else None
        if cookie is None or session is None or session.stage not in stages:
            return None
        return cookie, session

    def ended(self, lang: str, next_url: str) -> HTMLResponse:
        return self.login_form(lang, next_url, message(lang, "login.error.session_ended"))

    def password_page(self, lang: str, values: dict[str, str], msg: str = "", status: int = 200) -> HTMLResponse:
        policy = secpolicy.load(self.store)
        rules = text(lang, "login.policy.rules", length=policy.password_min_length,
                     classes=policy.password_classes, history=policy.password_history)
        return render("password.html", lang, {**values, "message": msg, "rules": rules}, status)

    async def get_password(self, request: Request) -> Response:
        lang, next_url = language(request), safe_next(request.query_params.get("next"))
        found = await self.session(request, "password", "")
        if found is None:
            return self.ended(lang, next_url)
        account = await asyncio.to_thread(self.provider.active_user, found[1].user_id)
        msg = message(lang, "login.password.expired") if account is not None and account.password_expired else ""
        return await asyncio.to_thread(self.password_page, lang, {"lang": lang, "csrf": found[1].csrf,
                                                                  "next": next_url}, msg)

    async def post_password(self, request: Request) -> Response:
        form = await read_form(request)
        lang, next_url = language(request, form), safe_next(form.get("next"))
        found = await self.session(request, "password", "")
        if found is None or form.get("csrf") != found[1].csrf:
            return self.ended(lang, next_url)
        cookie, session = found
        if (refused := await self.throttled(request, lang, next_url)) is not None:
            return refused
        values = {"lang": lang, "csrf": session.csrf, "next": next_url}
        if form.get("new", "") != form.get("confirm", ""):
            return await asyncio.to_thread(self.password_page, lang, values,
                                           message(lang, "login.password.mismatch"), 400)
        try:
            await asyncio.to_thread(self.provider.directory.change_password, session.user_id,
                                    form.get("current", ""), form.get("new", ""))
        except AccountLocked as exc:
            await asyncio.to_thread(self.provider.store.end_session, cookie)
            return self.locked(lang, next_url, exc)
        except PasswordRefused as exc:
            if exc.key == "current":
                await self.failed(request)
            reason = text(lang, f"login.policy.{exc.key}", n=exc.n) if exc.key else str(exc)
            return await asyncio.to_thread(self.password_page, lang, values,
                                           message(lang, "login.password.refused", reason), 400)
        account = await asyncio.to_thread(self.provider.active_user, session.user_id)
        stage = next_stage(account, factor_done=True) if account is not None else ""
        await asyncio.to_thread(self.provider.store.set_stage, cookie, stage)
        return self.go_on(stage, lang, next_url)

    async def done(self, request: Request) -> Response:
        lang = language(request)
        return render("done.html", lang, {"lang": lang})

    async def logout(self, request: Request, back: str = "") -> Response:
        cookie = request.cookies.get(COOKIE)
        if cookie:
            await asyncio.to_thread(self.provider.store.end_session, cookie)
        response = RedirectResponse(back or "/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response
