"""authlib's authorization server adapted to Starlette: grants, PKCE, revocation, introspection.

authlib's server classes are synchronous and framework-free; `OAuthRequest` carries a request
whose body the route has already awaited, every call into the server runs in a thread, never
on the event loop, and its (status, body, headers) become a Starlette response in routes.py.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl

from authlib.oauth2 import rfc6749  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    AuthorizationServer,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # type: ignore[import-untyped]
from authlib.oidc.core import OpenIDCode, UserInfo  # type: ignore[import-untyped]

from yunying.auth.oidc.keys import ALGORITHM
from yunying.auth.oidc.models import AccessToken, AuthCode, Client, RefreshToken
from yunying.auth.oidc.tokens import SCOPES, granted_scope
from yunying.auth.oidc.users import Account

if TYPE_CHECKING:
    from yunying.auth.oidc.provider import Provider

ANY_CLIENT_AUTH = ["client_secret_basic", "client_secret_post", "none"]


class OAuthPayload(rfc6749.OAuth2Payload):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for k, v in pairs:
            self._datalist[k].append(v)
        self._data = {k: v[0] for k, v in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class OAuthRequest(OAuth2Request):
    """A Starlette request for authlib, built after the body was read (authlib never awaits)."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str], query: str, body: bytes = b"") -> None:
        super().__init__(method, uri, headers=headers)
        self._args = dict(parse_qsl(query, keep_blank_values=True))
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        self._form = dict(pairs)
        self.payload = OAuthPayload(parse_qsl(query, keep_blank_values=True) + pairs)
        self.auth_time: int | None = None
        self.family_id: str | None = None

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class S256Challenge(CodeChallenge):
    """PKCE with S256 only (RFC 9700 §2.1.1), required from public clients."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if grant.request.client.public and not data.get("code_challenge"):
            raise InvalidRequestError("a public client must send a PKCE code_challenge (S256)")
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: AuthCode) -> str | None:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: AuthCode) -> str | None:
        return authorization_code.code_challenge_method


class IdToken(OpenIDCode):
    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return False  # codes are single-use, so a replayed nonce cannot redeem anything

    def resolve_client_private_key(self, client: Client) -> Any:
        return self.provider.keys.current

    def get_client_algorithm(self, client: Client) -> str:
        return ALGORITHM

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": ALGORITHM, "kid": self.provider.keys.kid, "typ": "JWT"}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        return {"iss": self.provider.config.issuer, "aud": [client.client_id],
                "exp": self.provider.now() + self.provider.config.access_seconds}

    def generate_user_info(self, user: Account, scope: str) -> UserInfo:
        return user_info(user, scope)


def user_info(user: Account, scope: str) -> UserInfo:
    info = UserInfo(sub=user.id, hospital=user.hospital)
    if "profile" in scope.split():
        info.update(name=user.name or user.username, preferred_username=user.username, roles=sorted(user.roles))
    return info


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ANY_CLIENT_AUTH
    server: YunyingServer

    def save_authorization_code(self, code: str, request: OAuthRequest) -> None:
        data = request.payload.data
        self.server.provider.store.save_code(
            code, request.client.client_id, request.user.id, data.get("redirect_uri"),
            granted_scope(request.scope, request.user), data.get("nonce"), data.get("code_challenge"),
            data.get("code_challenge_method"), request.auth_time or self.server.provider.now())

    def query_authorization_code(self, code: str, client: Client) -> AuthCode | None:
        return self.server.provider.store.find_code(code, client.client_id)

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        pass  # claimed in generate_token: a code is marked used, so that a second use is noticed

    def authenticate_user(self, authorization_code: AuthCode) -> Account | None:
        return self.server.provider.active_user(authorization_code.user_id)

    def generate_token(self, user: Any = None, scope: Any = None, grant_type: Any = None,
                       expires_in: Any = None, include_refresh_token: bool = True) -> dict[str, Any]:
        store, client = self.server.provider.store, self.request.client
        family = store.new_family(client.client_id, user.id)
        if not store.claim_code(self.request.authorization_code.code_hash, family):
            raise InvalidGrantError("the code was used already")  # a concurrent redemption won
        return self.server.provider.issue(client, user, scope, family, include_refresh_token)


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ANY_CLIENT_AUTH
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation (RFC 9700 §4.14.2)
    server: YunyingServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        token = self.server.provider.store.find_refresh(refresh_token)
        if token is None or token.is_revoked() or token.is_expired():
            return None
        return token

    def authenticate_user(self, refresh_token: RefreshToken) -> Account | None:
        return self.server.provider.active_user(refresh_token.user_id)

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        pass  # rotated in generate_token, atomically, before the new pair is issued

    def generate_token(self, user: Any = None, scope: Any = None, grant_type: Any = None,
                       expires_in: Any = None, include_refresh_token: bool = True) -> dict[str, Any]:
        old: RefreshToken = self.request.refresh_token
        store = self.server.provider.store
        if not store.rotate_refresh(old.token_hash):
            store.revoke_family(old.family_id, "refresh token reused")
            raise InvalidGrantError()
        return self.server.provider.issue(self.request.client, user, scope, old.family_id, True)


class ClientGrant(grants.ClientCredentialsGrant):
    server: YunyingServer

    def generate_token(self, user: Any = None, scope: Any = None, grant_type: Any = None,
                       expires_in: Any = None, include_refresh_token: bool = False) -> dict[str, Any]:
        client: Client = self.request.client
        return self.server.provider.issue(client, None, client.get_allowed_scope(scope), None, False)


class _TokenLookup:
    server: YunyingServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> AccessToken | RefreshToken | None:
        provider = self.server.provider
        if token_string.count(".") == 2:
            claims = provider.local_claims(token_string)
            return AccessToken(claims) if claims is not None else None
        return provider.store.find_refresh(token_string, reuse_revokes=False)


class Revocation(_TokenLookup, RevocationEndpoint):
    CLIENT_AUTH_METHODS = ANY_CLIENT_AUTH

    def revoke_token(self, token: AccessToken | RefreshToken, request: Any) -> None:
        store = self.server.provider.store
        if isinstance(token, RefreshToken):
            store.revoke_family(token.family_id, "revoked")  # RFC 7009 §2.1: its access tokens too
        else:
            store.revoke_access(str(token.claims["jti"]), int(token.claims["exp"]))  # type: ignore[call-overload]


class Introspection(_TokenLookup, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]  # resource servers

    def check_permission(self, token: Any, client: Client, request: Any) -> bool:
        return not client.public

    def introspect_token(self, token: AccessToken | RefreshToken) -> dict[str, Any]:
        if isinstance(token, AccessToken):
            keep = ("scope", "client_id", "sub", "exp", "iat", "nbf", "iss", "aud", "jti", "hospital", "roles")
            return {"active": True, "token_type": "Bearer", **{k: token.claims[k] for k in keep if k in token.claims}}
        return {"active": True, "token_type": "refresh_token", "scope": token.scope, "client_id": token.client_id,
                "sub": token.user_id, "exp": token.expires_at, "iat": token.issued_at}


class YunyingServer(AuthorizationServer):
    def __init__(self, provider: Provider) -> None:
        super().__init__(scopes_supported=sorted(SCOPES))
        self.provider = provider
        self.register_grant(CodeGrant, [S256Challenge(required=True), IdToken(provider)])
        self.register_grant(RefreshGrant)
        self.register_grant(ClientGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)

    def query_client(self, client_id: str) -> Client | None:
        return self.provider.store.get_client(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        pass  # access tokens are self-contained JWTs; refresh tokens are stored when issued

    def create_oauth2_request(self, request: Any) -> OAuthRequest:
        assert isinstance(request, OAuthRequest), "routes build the request after reading the body"
        return request

    def create_json_request(self, request: Any) -> Any:
        return request

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, dict[str, str]]:
        return status, body, dict(headers or [])  # routes.py turns it into a Starlette response
