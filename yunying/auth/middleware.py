"""The one authorization point: an ASGI middleware wrapping the whole HTTP app.

identify (bearer API key, our access tokens, plugged-in verifiers such as OIDC JWTs; the
launch cookie on safe methods) -> decide with the policy table (deny by default) -> put the
Principal on `request.state.principal` -> the handler. Refusals follow RFC 6750 section 3:
401 + `WWW-Authenticate: Bearer` (error="invalid_token" when a credential was sent and is
bad), 403 + error="insufficient_scope". Plain ASGI, so the yunying package needs no web
framework (tests/test_boundaries.py).
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import orjson

from yunying.auth.identify import Identifier, InvalidToken
from yunying.auth.policy import OPEN, RULES, Rules, allows
from yunying.auth.principal import NOTHING, Principal

log = logging.getLogger("yunying.auth")
ANONYMOUS = Principal(kind="anonymous", id="anonymous", hospital=None, visibility=NOTHING)
SESSION_COOKIE = "yy_session"  # set by a launch link; accepted on GET/HEAD only (no CSRF surface)
SAFE = {"GET", "HEAD"}
# a user who must change the password may only do that (and see who they are)
PASSWORD_CHANGE_PATHS = {"/api/auth/me", "/api/auth/logout"}

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class AuthMiddleware:
    """Wraps an ASGI app; `route_exists(scope)` tells a missing policy (403) from an unknown URL (404)."""

    def __init__(self, app: ASGIApp, identifier: Identifier, rules: Rules = RULES,
                 route_exists: Callable[[Scope], bool] = lambda scope: True) -> None:
        self.app, self.identifier, self.rules, self.route_exists = app, identifier, rules, route_exists
        # the table's regexes cost up to ~9 us (QIDO-RS /studies); its rules never change
        self._rule_for = functools.lru_cache(maxsize=4096)(rules.rule_for)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        method, path = scope.get("method", "GET"), scope["path"]
        headers = {k: v for k, v in scope["headers"] if k in (b"authorization", b"cookie",
                                                               b"access-control-request-method")}
        preflight = method == "OPTIONS" and b"access-control-request-method" in headers
        rule = self._rule_for(method, path, preflight)
        token = _bearer(headers.get(b"authorization")) or (
            _cookie(headers.get(b"cookie"), SESSION_COOKIE) if method in SAFE else None)
        principal = ANONYMOUS
        if token is not None:
            try:
                found = self.identifier.cached(token)
                if found is None:  # a database look-up: off the event loop
                    found = await anyio.to_thread.run_sync(self.identifier.identify, token)
                principal = found
            except InvalidToken as exc:
                if rule is None or rule.action != OPEN:  # an open route ignores a stale credential
                    await _refuse(scope, send, 401, "invalid_token", str(exc))
                    return
        if rule is None or rule.action != OPEN:
            if principal is ANONYMOUS:
                await _refuse(scope, send, 401, None, "authentication required")
                return
            if rule is None:
                if self.route_exists(scope):
                    log.warning("no policy for %s %s: refused", method, path)
                    await _refuse(scope, send, 403, "insufficient_scope", "no policy allows this route")
                    return
            elif not allows(rule.action, principal):
                await _refuse(scope, send, 403, "insufficient_scope", "this credential does not allow this request")
                return
            if principal.extra.get("must_change_password") and path not in PASSWORD_CHANGE_PATHS:
                await _refuse(scope, send, 403, "insufficient_scope", "change your password first (/login/password)")
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _bearer(value: bytes | None) -> str | None:
    if value is None:
        return None
    scheme, _, token = value.decode("latin-1").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token and " " not in token else None


def _cookie(value: bytes | None, name: str) -> str | None:
    if value is None:
        return None
    for part in value.decode("latin-1").split(";"):
        key, _, val = part.strip().partition("=")
        if key == name and val:
            return val
    return None


async def _refuse(scope: Scope, send: Any, status: int, error: str | None, reason: str) -> None:
    """RFC 6750 3.1 refusal, in the archive's one error shape {"status", "error"}."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})  # policy violation
        return
    challenge = 'Bearer realm="yunying"' + (f', error="{error}"' if error else "")
    body = orjson.dumps({"status": status, "error": reason})
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", challenge.encode()), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})
