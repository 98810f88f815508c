"""authlib's model interfaces over our rows: a client, an authorization code, a refresh token."""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, scope_to_list  # type: ignore[import-untyped]
from authlib.oidc.core import AuthorizationCodeMixin as OidcCodeMixin  # type: ignore[import-untyped]

from yunying.auth import clock

PUBLIC_AUTH = ("none",)
CONFIDENTIAL_AUTH = ("client_secret_basic", "client_secret_post")


def digest(secret: str) -> str:
    """SHA-256 of a random credential (256 bits of entropy: no slow hash needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Client(ClientMixin):
    client_id: str
    secret_hash: str | None
    name: str
    redirect_uris: tuple[str, ...]
    scope: str
    grant_types: tuple[str, ...]
    hospital: str

    @property
    def public(self) -> bool:
        return self.secret_hash is None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = scope_to_list(self.scope)
        if not scope:
            return " ".join(allowed)
        return " ".join(s for s in scope_to_list(scope) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact match (RFC 9700 §4.1.3)

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret_hash is not None and hmac.compare_digest(self.secret_hash, digest(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in (PUBLIC_AUTH if self.public else CONFIDENTIAL_AUTH)

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials" and self.public:
            return False  # a browser app holds no secret to act as itself
        return grant_type in self.grant_types


@dataclass(frozen=True)
class AuthCode(OidcCodeMixin):
    code_hash: str
    client_id: str
    user_id: str
    redirect_uri: str | None
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return ["pwd"]


@dataclass(frozen=True)
class RefreshToken(TokenMixin):
    token_hash: str
    family_id: str
    client_id: str
    user_id: str
    scope: str
    issued_at: int
    expires_at: int
    revoked: bool = False

    def check_client(self, client: ClientMixin) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_at - self.issued_at

    def is_expired(self) -> bool:
        return clock.now() >= self.expires_at  # the auth clock: tests move it forward

    def is_revoked(self) -> bool:
        return self.revoked


@dataclass(frozen=True)
class AccessToken(TokenMixin):
    """A verified access token JWT (for revocation and introspection)."""

    claims: dict[str, object]

    def check_client(self, client: ClientMixin) -> bool:
        return self.claims.get("client_id") == client.get_client_id()

    def get_scope(self) -> str:
        return str(self.claims.get("scope", ""))

    def get_expires_in(self) -> int:
        return int(self.claims["exp"]) - int(self.claims["iat"])  # type: ignore[call-overload]

    def is_expired(self) -> bool:
        return time.time() >= int(self.claims["exp"])  # type: ignore[call-overload]

    def is_revoked(self) -> bool:
        return False  # a revoked one never verifies, so it never becomes an AccessToken
