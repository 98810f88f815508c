"""The login's second factor (issue 12 part 4): the TOTP code after the password, and setting
TOTP up (required for administrator roles by the security policy, offered to others), with
one-time recovery codes shown once. Server-rendered like the rest of the login pages."""
from __future__ import annotations

import asyncio
import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from dicomweb.login import (
    LoginPages,
    language,
    message,
    next_stage,
    read_form,
    record,
    render,
    safe_next,
    text,
)
from yunying.auth import secpolicy, totp
from yunying.auth.oidc.users import AccountLocked


class SecondFactorPages:
    def __init__(self, pages: LoginPages) -> None:
        self.pages = pages
        self.provider = pages.provider

    def code_page(self, lang: str, csrf: str, next_url: str, msg: str = "", status: int = 200) -> HTMLResponse:
        return render("totp.html", lang, {"lang": lang, "csrf": csrf, "next": next_url, "message": msg}, status)

    async def get_code(self, request: Request) -> Response:
        lang, next_url = language(request), safe_next(request.query_params.get("next"))
        found = await self.pages.session(request, "totp")
        if found is None:
            return self.pages.ended(lang, next_url)
        return self.code_page(lang, found[1].csrf, next_url)

    async def post_code(self, request: Request) -> Response:
        form = await read_form(request)
        lang, next_url = language(request, form), safe_next(form.get("next"))
        found = await self.pages.session(request, "totp")
        if found is None or form.get("csrf") != found[1].csrf:
            return self.pages.ended(lang, next_url)
        cookie, session = found
        if (refused := await self.pages.throttled(request, lang, next_url)) is not None:
            return refused
        try:
            used = await asyncio.to_thread(self.provider.directory.check_second_factor, session.user_id,
                                           form.get("code", ""))
        except AccountLocked as exc:
            await self.pages.failed(request)
            await asyncio.to_thread(self.provider.store.end_session, cookie)
            record("login", "refused", session.user_id, request, factor="totp", locked=True)
            return self.pages.locked(lang, next_url, exc)
        if used is None:
            await self.pages.failed(request)
            record("login", "refused", session.user_id, request, factor="totp")
            return self.code_page(lang, session.csrf, next_url, message(lang, "login.totp.wrong"), 401)
        record("login", "success", session.user_id, request, factor=used)
        account = await asyncio.to_thread(self.provider.active_user, session.user_id)
        stage = next_stage(account, factor_done=True) if account is not None else "totp"
        await asyncio.to_thread(self.provider.store.set_stage, cookie, stage)
        return self.pages.go_on(stage, lang, next_url)

    async def setup_page(self, request: Request, lang: str, next_url: str, msg: str = "",
                         status: int = 200) -> Response:
        found = await self.pages.session(request, "enroll", "")
        if found is None:
            return self.pages.ended(lang, next_url)
        account = await asyncio.to_thread(self.provider.active_user, found[1].user_id)
        if account is None:
            return self.pages.ended(lang, next_url)
        policy = await asyncio.to_thread(secpolicy.load, self.pages.store)
        if account.totp or not (account.totp_required or policy.totp_others):
            key = "login.setup.done_already" if account.totp else "login.setup.off"
            return render("done.html", lang, {"lang": lang, "message": message(lang, key)}, 409)
        secret = await asyncio.to_thread(self.provider.directory.begin_second_factor, account.id)
        _, qr = totp.provisioning(secret, account.username)
        explain = text(lang, "login.setup.required" if account.totp_required else "login.setup.optional")
        return render("setup.html", lang, {"lang": lang, "csrf": found[1].csrf, "next": next_url, "message": msg,
                                           "qr": qr, "secret": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
                                           "explain": explain}, status)

    async def get_setup(self, request: Request) -> Response:
        return await self.setup_page(request, language(request), safe_next(request.query_params.get("next")))

    async def post_setup(self, request: Request) -> Response:
        form = await read_form(request)
        lang, next_url = language(request, form), safe_next(form.get("next"))
        found = await self.pages.session(request, "enroll", "")
        if found is None or form.get("csrf") != found[1].csrf:
            return self.pages.ended(lang, next_url)
        cookie, session = found
        if (refused := await self.pages.throttled(request, lang, next_url)) is not None:
            return refused
        codes = await asyncio.to_thread(self.provider.directory.confirm_second_factor, session.user_id,
                                        form.get("code", ""))
        if codes is None:
            await self.pages.failed(request)
            return await self.setup_page(request, lang, next_url, message(lang, "login.totp.wrong"), 400)
        record("totp.enroll", "success", session.user_id, request)
        await asyncio.to_thread(self.provider.store.set_stage, cookie, "")
        items = "".join(f"<li><code>{html.escape(c)}</code></li>" for c in codes)
        target = next_url or "/login/done?lang=" + lang
        return render("recovery.html", lang, {"lang": lang, "codes": items, "continue_href": target})
