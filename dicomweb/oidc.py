"""The OpenID provider's HTTP face (yunying.auth.oidc): discovery, JWKS, authorize, token, revoke,
introspect, userinfo, login.

Every route here is open (the client authenticates inside the request, per RFC 6749 §2.3)
except userinfo, which takes a bearer access token. Errors are RFC 6749 §5.2 JSON bodies;
userinfo's are RFC 6750 §3 with WWW-Authenticate.
"""
from __future__ import annotations

import asyncio
from functools import partial
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from dicomweb import oauth_clients
from dicomweb.accounts import json_response
from dicomweb.login import COOKIE, FRONTENDS, MAX_FORM, STAGE_PAGES, LoginPages
from dicomweb.second_factor import SecondFactorPages
from yunying.auth.identify import InvalidToken
from yunying.auth.oidc import Oidc
from yunying.auth.oidc.keys import ALGORITHM
from yunying.auth.oidc.provider import Provider
from yunying.auth.oidc.server import OAuthRequest, user_info
from yunying.auth.oidc.tokens import SCOPES
from yunying.auth.oidc.verify import TokenVerifier
from yunying.auth.principal import Principal


def oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": error, "error_description": description}, status, headers)


def routes(oidc: Oidc) -> list[Route]:
    """The provider's routes, mounted by the composition root (their policy rows: yunying/auth/policy.py)."""
    return OidcRoutes(oidc.provider, oidc.verifier).routes() + oauth_clients.routes(oidc.provider.store)


class OidcRoutes:
    def __init__(self, provider: Provider, verifier: TokenVerifier) -> None:
        self.provider = provider
        self.verifier = verifier
        self.pages = LoginPages(provider)
        self.factor = SecondFactorPages(self.pages)

    def routes(self) -> list[Route]:
        p = self.pages
        return [
            Route("/.well-known/openid-configuration", self.discovery, methods=["GET", "OPTIONS"]),
            Route("/oauth/jwks", self.jwks, methods=["GET", "OPTIONS"]),
            Route("/oauth/authorize", self.authorize, methods=["GET", "POST"]),
            Route("/oauth/token", self.token, methods=["POST", "OPTIONS"]),
            Route("/oauth/revoke", self.revoke, methods=["POST", "OPTIONS"]),
            Route("/oauth/introspect", self.introspect, methods=["POST"]),
            Route("/oauth/userinfo", self.userinfo, methods=["GET", "POST", "OPTIONS"]),
            Route("/login", p.get_login, methods=["GET"]),
            Route("/login", p.post_login, methods=["POST"]),
            Route("/login/password", p.get_password, methods=["GET"]),
            Route("/login/password", p.post_password, methods=["POST"]),
            Route("/login/totp", self.factor.get_code, methods=["GET"]),
            Route("/login/totp", self.factor.post_code, methods=["POST"]),
            Route("/login/totp/setup", self.factor.get_setup, methods=["GET"]),
            Route("/login/totp/setup", self.factor.post_setup, methods=["POST"]),
            Route("/login/done", p.done, methods=["GET"]),
            Route("/login/login.css", self.css, methods=["GET"]),
            Route("/login/logout", self.logout, methods=["GET", "POST"]),
        ]

    # browser apps on other origins (OHIF) call these from JavaScript: allow their registered origins
    async def cors(self, request: Request, response: Response) -> Response:
        origin = request.headers.get("origin")
        if origin and await self._known_origin(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
                response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
                response.headers["Access-Control-Max-Age"] = "600"
        return response

    async def _known_origin(self, origin: str) -> bool:
        clients = await asyncio.to_thread(self.provider.store.list_clients)
        return any(_origin(uri) == origin for c in clients for uri in c.redirect_uris)

    async def preflight(self, request: Request) -> Response | None:
        return await self.cors(request, Response(status_code=204)) if request.method == "OPTIONS" else None

    async def discovery(self, request: Request) -> Response:
        if (pre := await self.preflight(request)) is not None:
            return pre
        iss = self.provider.config.issuer
        doc = {  # OpenID Connect Discovery 1.0 §3, RFC 8414
            "issuer": iss, "authorization_endpoint": iss + "/oauth/authorize", "token_endpoint": iss + "/oauth/token",
            "jwks_uri": iss + "/oauth/jwks", "userinfo_endpoint": iss + "/oauth/userinfo",
            "revocation_endpoint": iss + "/oauth/revoke", "introspection_endpoint": iss + "/oauth/introspect",
            "end_session_endpoint": iss + "/login/logout",
            "response_types_supported": ["code"], "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": [ALGORITHM],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"], "scopes_supported": sorted(SCOPES),
            "claims_supported": ["sub", "name", "preferred_username", "hospital", "roles"],
        }
        return await self.cors(request, json_response(doc, headers={"Cache-Control": "max-age=300"}))

    async def jwks(self, request: Request) -> Response:
        if (pre := await self.preflight(request)) is not None:
            return pre
        return await self.cors(request, json_response(self.provider.keys.jwks(),
                                                      headers={"Cache-Control": "max-age=300"}))

    async def css(self, request: Request) -> Response:
        return FileResponse(FRONTENDS / "login" / "login.css", media_type="text/css")

    async def _oauth_request(self, request: Request) -> OAuthRequest | Response:
        body = await request.body() if request.method == "POST" else b""
        if len(body) > MAX_FORM:
            return oauth_error(400, "invalid_request", "the request body is too large")
        if body and "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return oauth_error(400, "invalid_request", "send application/x-www-form-urlencoded (RFC 6749 §4.1.3)")
        uri = self.provider.config.issuer + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return OAuthRequest(request.method, uri, request.headers, request.url.query, body)

    async def _serve(self, request: Request, call: Any) -> Response:
        """Read the body, then run authlib's `call(oauth_request)` in a thread; CORS for browser apps."""
        if (pre := await self.preflight(request)) is not None:
            return pre
        req = await self._oauth_request(request)
        if isinstance(req, Response):
            return await self.cors(request, req)
        status, body, headers = await asyncio.to_thread(call, req)
        if isinstance(body, dict):
            return await self.cors(request, json_response(body, status, headers))
        return await self.cors(request, Response(body or b"", status_code=status, headers=headers))

    async def token(self, request: Request) -> Response:
        return await self._serve(request, self.provider.server.create_token_response)

    async def revoke(self, request: Request) -> Response:
        return await self._serve(request, partial(self.provider.server.create_endpoint_response, "revocation"))

    async def introspect(self, request: Request) -> Response:
        return await self._serve(request, partial(self.provider.server.create_endpoint_response, "introspection"))

    async def authorize(self, request: Request) -> Response:
        req = await self._oauth_request(request)
        if isinstance(req, Response):
            return req
        cookie = request.cookies.get(COOKIE)
        session = await asyncio.to_thread(self.provider.store.get_session, cookie) if cookie else None
        user = await asyncio.to_thread(self.provider.active_user, session.user_id) if session else None
        if session is not None and not session.complete:
            user = None  # the second factor, a password change or a second-factor set-up comes first
        return await asyncio.to_thread(self._authorize, req, request.url.query, user, session)

    def _authorize(self, req: OAuthRequest, query: str, user: Any, session: Any) -> Response:
        """In a thread: authlib validates the client, redirect URI, PKCE and scope, then issues the code."""
        from authlib.oauth2 import OAuth2Error  # type: ignore[import-untyped]

        server = self.provider.server
        try:
            grant = server.get_consent_grant(req, end_user=user)
        except OAuth2Error as error:
            status, body, headers = server.handle_error_response(req, error)
            if status == 302:
                return RedirectResponse(headers["Location"], status_code=302)
            return json_response(body, status, headers)
        if user is None:  # first-party clients registered by an admin: no consent screen, only login
            target = STAGE_PAGES.get(session.stage, "/login") if session is not None else "/login"
            return RedirectResponse(f"{target}?" + urlencode({"next": f"/oauth/authorize?{query}"}), status_code=302)
        req.auth_time = session.auth_time
        status, body, headers = server.create_authorization_response(req, grant_user=user, grant=grant)
        if status == 302:
            return RedirectResponse(headers["Location"], status_code=302)
        return json_response(body, status, headers)

    async def logout(self, request: Request) -> Response:
        """RP-initiated logout (OIDC RP-Initiated Logout 1.0): end the session, back to a registered app."""
        back = request.query_params.get("post_logout_redirect_uri", "")
        if back and not await self._known_origin(_origin(back)):
            back = ""  # never an open redirect
        return await self.pages.logout(request, back)

    async def userinfo(self, request: Request) -> Response:
        if (pre := await self.preflight(request)) is not None:
            return pre
        principal = getattr(request.state, "principal", None)
        if not isinstance(principal, Principal):
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                return await self.cors(request, oauth_error(401, "invalid_request", "a bearer token is required",
                                                            {"WWW-Authenticate": 'Bearer realm="yunying"'}))
            try:
                principal = await asyncio.to_thread(self.verifier, token.strip())
            except InvalidToken as exc:
                challenge = f'Bearer realm="yunying", error="invalid_token", error_description="{exc}"'
                return await self.cors(request, oauth_error(401, "invalid_token", str(exc),
                                                            {"WWW-Authenticate": challenge}))
        if principal is None or principal.kind != "user":
            return await self.cors(request, oauth_error(
                401, "invalid_token", "userinfo needs a user's access token",
                {"WWW-Authenticate": 'Bearer realm="yunying", error="invalid_token"'}))
        account = await asyncio.to_thread(self.provider.active_user, principal.id)
        if account is None:
            info: dict[str, Any] = {"sub": principal.id, "hospital": principal.hospital,
                                    "roles": sorted(principal.roles)}
        else:
            info = dict(user_info(account, "openid profile"))
        return await self.cors(request, json_response(info))


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"
