"""Access tokens as JWTs (RFC 9068 profile), signed with the provider's current key."""
from __future__ import annotations

import secrets
import time
from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list  # type: ignore[import-untyped]
from joserfc import jwt

from yunying.auth.oidc.keys import ALGORITHM, SigningKeys
from yunying.auth.oidc.users import Account
from yunying.auth.roles import PERMISSIONS

ACCESS_TOKEN_TYPE = "at+jwt"  # RFC 9068 §2.1: keeps ID tokens from being replayed as access tokens
PERMISSION_SCOPES = PERMISSIONS  # a token's scope names the permissions it may use
OIDC_SCOPES = frozenset({"openid", "profile"})
SCOPES = OIDC_SCOPES | PERMISSION_SCOPES


def granted_scope(requested: str, account: Account | None) -> str:
    """What a token may carry: the permission scopes the user holds (all, for a client acting as itself)."""
    wanted = scope_to_list(requested) or []
    return " ".join(s for s in wanted if s in SCOPES and (
        account is None or s in OIDC_SCOPES or s in account.permissions))


def access_token(keys: SigningKeys, issuer: str, lifetime: int, client_id: str, scope: str,
                 account: Account | None, hospital: str, family: str | None) -> tuple[str, dict[str, Any]]:
    """Sign one access token; returns (jwt, claims)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer, "aud": issuer, "iat": now, "nbf": now, "exp": now + lifetime,
        "jti": secrets.token_urlsafe(16), "client_id": client_id, "scope": scope,
        "sub": account.id if account else client_id,
        "hospital": account.hospital if account else hospital,
    }
    if account is not None:
        claims["roles"] = sorted(account.roles)
    if family is not None:
        claims["fam"] = family  # the grant it belongs to: revoking the grant revokes this token
    header = {"alg": ALGORITHM, "kid": keys.kid, "typ": ACCESS_TOKEN_TYPE}
    return jwt.encode(header, claims, keys.current, algorithms=[ALGORITHM]), claims
