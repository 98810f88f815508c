"""The portal's WeChat binding API (issue 14 part 8; yunying.portal.wechat_bind): a verified
patient, inside WeChat, binds the official account's openid to the portal account so report
notices come as WeChat messages (SMS stays the fallback), and may unbind. Patients only; the
openid is never answered, logged or recorded in the audit trail (which records each call as
`portal` / `portal.change`, yunying.audit.middleware)."""
from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dicomweb.accounts import call, json_body, json_response, pii_of, store_of
from dicomweb.portal import _account, _text, portal_of
from yunying.portal import wechat_bind
from yunying.portal.wechat_bind import OAuth


def _oauth() -> OAuth:
    found = OAuth.from_env(os.environ)
    if found is None:
        raise wechat_bind.WeChatOff("the hospital has no WeChat official account configured")
    return found


async def wechat_state(request: Request) -> Response:
    """{"available", "bound", "declined"} for the signed-in patient."""
    account, oauth = _account(request), OAuth.from_env(os.environ)
    if oauth is None:
        return json_response({"available": False, "bound": False, "declined": False})
    return json_response({"available": True} | await call(wechat_bind.state_of, store_of(request), account, oauth.app_id))


async def wechat_start(request: Request) -> Response:
    """The WeChat authorize URL to send the browser to; WeChat comes back to /portal/?code&state."""
    account, oauth = _account(request), _oauth()
    back = (portal_of(request).base_url or str(request.base_url)).rstrip("/") + "/portal/"
    return json_response({"url": oauth.authorize_url(back, wechat_bind.make_state(portal_of(request).key, account))})


async def wechat_bind_code(request: Request) -> Response:
    """POST {"code", "state"} from WeChat's redirect: trade the code for the openid, bind it."""
    account, oauth, body = _account(request), _oauth(), await json_body(request)
    code, state = _text(body, "code", 128, True), _text(body, "state", 128, True)
    wechat_bind.check_state(portal_of(request).key, account, state)
    openid = await call(oauth.openid, code)
    await call(wechat_bind.bind, store_of(request), pii_of(request), account, oauth.app_id, openid)
    return json_response({"bound": True})


async def wechat_unbind(request: Request) -> Response:
    account = _account(request)
    await call(wechat_bind.unbind, store_of(request), account)
    return json_response({"bound": False})


def routes() -> list[Route]:
    return [
        Route("/api/portal/wechat", wechat_state, methods=["GET"]),
        Route("/api/portal/wechat", wechat_unbind, methods=["DELETE"]),
        Route("/api/portal/wechat/start", wechat_start, methods=["POST"]),
        Route("/api/portal/wechat/bind", wechat_bind_code, methods=["POST"]),
    ]
