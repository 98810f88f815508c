"""The provider: configuration, store, keys and user directory, and the tokens it issues."""
from __future__ import annotations

import secrets
import time
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from yunying.auth.oidc.config import OidcConfig
from yunying.auth.oidc.keys import ALGORITHM, SigningKeys
from yunying.auth.oidc.models import Client
from yunying.auth.oidc.server import YunyingServer
from yunying.auth.oidc.store import OAuthStore
from yunying.auth.oidc.tokens import ACCESS_TOKEN_TYPE, access_token, granted_scope
from yunying.auth.oidc.users import Account, Directory

LEEWAY_S = 5  # our own clock: only the skew between worker threads and the verifier


class Provider:
    def __init__(self, config: OidcConfig, store: OAuthStore, keys: SigningKeys, directory: Directory) -> None:
        self.config = config
        self.store = store
        self.keys = keys
        self.directory = directory
        self.server = YunyingServer(self)

    @staticmethod
    def now() -> int:
        return int(time.time())

    def active_user(self, user_id: str) -> Account | None:
        account = self.directory.get_user(user_id)
        return account if account is not None and account.active else None

    def issue(self, client: Client, user: Account | None, scope: str | None, family: str | None,
              refresh: bool) -> dict[str, Any]:
        """The token response body (RFC 6749 §5.1) with a JWT access token and a rotated refresh token."""
        scope = granted_scope(scope or "", user)
        token, _ = access_token(self.keys, self.config.issuer, self.config.access_seconds, client.client_id,
                                scope, user, client.hospital, family)
        body: dict[str, Any] = {"token_type": "Bearer", "access_token": token,
                                "expires_in": self.config.access_seconds, "scope": scope}
        if refresh and user is not None and family is not None:
            body["refresh_token"] = value = "yr_" + secrets.token_urlsafe(32)
            self.store.save_refresh(value, family, client.client_id, user.id, scope, self.config.refresh_seconds)
        return body

    def local_claims(self, token: str, check_revoked: bool = True) -> dict[str, Any] | None:
        """The claims of one of our valid access tokens, or None (forged, expired, revoked, not ours)."""
        try:
            decoded = jwt.decode(token, self.keys.published, algorithms=[ALGORITHM])
            if decoded.header.get("typ") != ACCESS_TOKEN_TYPE:
                return None  # an ID token or another JWT signed by us is no access token
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY_S, iss={"essential": True, "value": self.config.issuer},
                aud={"essential": True, "value": self.config.issuer}, exp={"essential": True},
                jti={"essential": True}, sub={"essential": True}).validate(decoded.claims)
        except (JoseError, ValueError, TypeError):
            return None
        claims = dict(decoded.claims)
        if check_revoked and self.store.is_revoked(claims.get("jti"), claims.get("fam")):
            return None
        return claims
