"""The caller's own account over HTTP: health, capability-token exchange, who am I, logout,
break-glass, self-registration, launch links (issue 11). Store calls run in threads.

Users sign in only through the OpenID provider's login page (/login: password policy, lockout,
second factor, session timeouts, dicomweb/login.py); scripts use API keys or client credentials.
There is no password endpoint beside it that would have to repeat those checks (issue 12)."""
from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import orjson
from sqlalchemy import insert, update
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from yunying.auth import launch, registrations, throttle, tokens
from yunying.auth.errors import BadCredentials, Forbidden, InvalidRequest
from yunying.auth.identify import InvalidToken
from yunying.auth.middleware import SESSION_COOKIE
from yunying.auth.principal import Principal
from yunying.auth.schema import access_tokens, break_glass
from yunying.auth.store import Store
from yunying.pii import PiiKeys, keys_for

MAX_JSON = 64 * 1024
MAX_REGISTRATION = 12 * 1024 * 1024  # two photos of at most 4 MiB, base64
BREAK_GLASS_MAX_MINUTES = 240


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json",
                    headers={"Cache-Control": "no-store", **(headers or {})})


async def json_body(request: Request, limit: int = MAX_JSON) -> dict[str, Any]:
    """The request's JSON object; 400 when it is not one (or is too large)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise InvalidRequest(f"body: at most {limit} bytes of JSON")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("body: not JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest("body: a JSON object expected")
    return value


def field(body: dict[str, Any], name: str, kind: type = str, required: bool = True) -> Any:
    """A typed field of a JSON body; 400 naming it when missing or of the wrong type."""
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidRequest(f"{name}: {kind.__name__} expected")
    return value


def store_of(request: Request) -> Store:
    return request.app.state.auth.store


def pii_of(request: Request) -> PiiKeys:
    """The keys that seal personal data at rest (yunying.pii; cached per key file)."""
    settings = request.app.state.settings
    return keys_for(settings.data, settings.pii_key_file)


def principal_of(request: Request) -> Principal:
    return request.state.principal


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A blocking store call (SQLAlchemy, argon2) off the event loop."""
    return await run_in_threadpool(fn, *args, **kwargs)


def describe(p: Principal) -> dict[str, Any]:
    v = p.visibility
    return {"kind": p.kind, "id": p.id, "hospital": p.hospital, "roles": sorted(p.roles),
            "permissions": sorted(p.permissions), "must_change_password": bool(p.extra.get("must_change_password")),
            "department_id": int(p.extra["department_id"]) if "department_id" in p.extra else None,
            "visibility": {"everything": v.everything, "hospitals": sorted(v.hospitals),
                           "studies": sorted(v.studies), "series": sorted(v.series)}}


async def health(request: Request) -> Response:
    return json_response({"status": "ok"})


async def exchange(request: Request) -> Response:
    """A capability token (and its access code) -> a short access token bound to its studies.
    Wrong tokens and codes count in the address throttle shared with the login page."""
    body = await json_body(request)
    store, address = store_of(request), request.client.host if request.client else ""
    try:
        await call(throttle.check, store, address)
        return json_response(await call(tokens.exchange, store, field(body, "token"),
                                        field(body, "code", required=False)))
    except throttle.TooManyAttempts as exc:
        return json_response({"status": 429, "error": exc.reason}, 429, {"Retry-After": str(exc.retry_after)})
    except BadCredentials:
        await call(throttle.failed, store, address)
        raise


async def me(request: Request) -> Response:
    return json_response(describe(principal_of(request)))


async def logout(request: Request) -> Response:
    """Revoke the access token this request came with (API keys are revoked by an admin)."""
    p, store = principal_of(request), store_of(request)

    def revoke() -> None:
        with store.engine.begin() as conn:
            conn.execute(update(access_tokens).where(access_tokens.c.id == p.token_id)
                         .values(revoked_at=int(time.time())))
        store.revoked()
    if p.token_id:
        await call(revoke)
    return json_response({"logged_out": True}, headers={"Set-Cookie": f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly"})


async def open_break_glass(request: Request) -> Response:
    """Recorded emergency access to every study for a platform user, for a bounded time."""
    body = await json_body(request)
    reason = field(body, "reason").strip()
    minutes = field(body, "minutes", int, required=False) or 30
    if len(reason) < 10:
        raise InvalidRequest("reason: say why, in at least 10 characters")
    if not 0 < minutes <= BREAK_GLASS_MAX_MINUTES:
        raise InvalidRequest(f"minutes: 1-{BREAK_GLASS_MAX_MINUTES}")
    p, store = principal_of(request), store_of(request)
    if p.kind != "user":
        raise Forbidden("break-glass is for a named user")
    now = int(time.time())

    def record() -> None:
        with store.engine.begin() as conn:
            conn.execute(insert(break_glass).values(username=p.id, reason=reason, started_at=now,
                                                    expires_at=now + minutes * 60))
        store.revoked()
    await call(record)
    return json_response({"until": now + minutes * 60}, status=201)


async def register(request: Request) -> Response:
    """A doctor's self-registration, with photos as base64 (reviewed in /api/admin/registrations)."""
    body = await json_body(request, MAX_REGISTRATION)
    photos = []
    for item in field(body, "photos", list):
        if not isinstance(item, dict):
            raise InvalidRequest('photos: [{"kind", "content_type", "data" (base64)}]')
        try:
            data = base64.b64decode(field(item, "data"), validate=True)
        except binascii.Error:
            raise InvalidRequest("photos: data is not base64") from None
        photos.append((field(item, "kind"), field(item, "content_type"), data))
    reg_id = await call(registrations.submit, store_of(request), pii_of(request), username=field(body, "username"),
                        password=field(body, "password"), display_name=field(body, "display_name"),
                        phone=field(body, "phone"), hospital=field(body, "hospital"),
                        department=field(body, "department", required=False) or "",
                        title=field(body, "title", required=False) or "", photos=photos)
    return json_response({"id": reg_id, "status": "pending"}, 201)


async def open_launch(request: Request) -> Response:
    """A signed launch link (HMAC or a hospital provider's JWT): a session cookie, then the viewer."""
    token = request.query_params.get("jwt")
    if token is not None:
        done = await call(_redeem_jwt, request, token)
    else:
        done = await call(launch.redeem, store_of(request), dict(request.query_params))
    target = "/viewer/?" + urlencode({k: done[k] for k in ("study", "accession") if k in done})
    secure = "; Secure" if request.url.scheme == "https" else ""
    cookie = f"{SESSION_COOKIE}={done['access_token']}; Max-Age={done['expires_in']}; Path=/; HttpOnly; SameSite=Lax{secure}"
    return Response(status_code=303, headers={"Location": target, "Set-Cookie": cookie, "Cache-Control": "no-store"})


def _redeem_jwt(request: Request, token: str) -> dict[str, Any]:
    oidc = request.app.state.oidc
    try:  # the trusted-issuer verifier: pinned algorithms, the issuer's JWKS, our launch audience
        trusted, claims = oidc.verifier.launch_claims(token, launch_audience(oidc.provider.config.issuer))
    except InvalidToken as exc:
        raise BadCredentials(f"launch: {exc}") from None
    return launch.redeem_jwt(store_of(request), trusted.issuer, trusted.hospital,
                             claims.get(trusted.username_claim), claims)


def launch_audience(issuer: str) -> str:
    """The `aud` a launch JWT must carry: our launch endpoint."""
    return f"{issuer}/launch"


def routes() -> list[Route]:
    return [
        Route("/health", health, methods=["GET"]),
        Route("/api/auth/exchange", exchange, methods=["POST"]),
        Route("/api/auth/me", me, methods=["GET"]),
        Route("/api/auth/logout", logout, methods=["POST"]),
        Route("/api/auth/break-glass", open_break_glass, methods=["POST"]),
        Route("/api/auth/register", register, methods=["POST"]),
        Route("/launch", open_launch, methods=["GET"]),
    ]
