"""Bearer JWTs to principals: ours (ES256, our JWKS) and those of trusted hospital providers.

Each issuer has its algorithms pinned in configuration; the token's `alg` only selects among
them, so `alg: none` and HS256-signed-with-the-public-key (RS/HS confusion) never verify.
Synchronous: the authorization point calls it in a worker thread (yunying.auth.identify).
"""
from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from yunying.auth.identify import InvalidToken
from yunying.auth.oidc.config import TrustedIssuer
from yunying.auth.oidc.provider import Provider
from yunying.auth.oidc.tokens import PERMISSION_SCOPES
from yunying.auth.principal import DICOMWEB_READ, Principal, Visibility

log = logging.getLogger("yunying.auth.oidc")
JWKS_TTL_S = 600
JWKS_RETRY_S = 30  # an unknown kid refetches the set at most this often (a key rotation)
EXTERNAL_LEEWAY_S = 30  # another machine's clock


@dataclass
class _Jwks:
    keys: KeySet | None = None
    fetched: float = 0.0
    missed: float = -JWKS_RETRY_S  # last refetch for an unknown kid


@dataclass
class TokenVerifier:
    provider: Provider
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5, trust_env=False))
    _jwks: dict[str, _Jwks] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, token: str) -> Principal | None:
        """A principal for a valid JWT; None when `token` is no JWT (an API key, say); InvalidToken otherwise."""
        issuer = _peek_issuer(token)
        if issuer is None:
            return None
        if issuer == self.provider.config.issuer:
            return self._ours(token)
        trusted = next((t for t in self.provider.config.trusted if t.issuer == issuer), None)
        if trusted is None:
            raise InvalidToken("the token's issuer is not trusted")
        return self._theirs(token, trusted)

    def launch_claims(self, token: str, audience: str) -> tuple[TrustedIssuer, dict[str, Any]]:
        """A launch JWT of a trusted hospital provider, checked like its access tokens but for
        `audience` (our launch endpoint), so an access token is no launch link and the reverse."""
        issuer = _peek_issuer(token)
        if issuer is None:
            raise InvalidToken("the token is not a JWT")
        trusted = next((t for t in self.provider.config.trusted if t.issuer == issuer), None)
        if trusted is None:
            raise InvalidToken("the token's issuer is not trusted")
        return trusted, self._decode_external(token, trusted, audience)

    def _ours(self, token: str) -> Principal:
        claims = self.provider.local_claims(token)
        if claims is None:
            raise InvalidToken("the access token is invalid, expired or revoked")
        scope = frozenset(str(claims.get("scope", "")).split())
        if "roles" not in claims:  # client_credentials: a system acting as itself
            client = self.provider.store.get_client(claims["client_id"])
            if client is None:
                raise InvalidToken("the client was removed or disabled")
            return Principal(kind="system", id=client.client_id, hospital=client.hospital,
                             roles=frozenset({"system_client"}), permissions=scope & PERMISSION_SCOPES,
                             visibility=Visibility(hospitals=frozenset({client.hospital})), token_id=claims["jti"])
        principal = self.provider.directory.principal(claims["sub"], claims["jti"])
        if principal is None:
            raise InvalidToken("the user is disabled or removed")
        # the user's rights now (a role removed counts at once), within what the token was granted
        permissions = principal.permissions & scope
        if DICOMWEB_READ not in scope and DICOMWEB_READ in principal.permissions and principal.visibility.shared:
            # a study shared with the user after they signed in (the token holds no read scope then):
            # readable at once, and only what was shared (yunying.auth.identify.user_principal)
            return replace(principal, permissions=permissions | {DICOMWEB_READ},
                           visibility=principal.visibility.grants_only())
        return replace(principal, permissions=permissions)

    def _theirs(self, token: str, trusted: TrustedIssuer) -> Principal:
        claims = self._decode_external(token, trusted)
        username = claims.get(trusted.username_claim)
        if not isinstance(username, str) or not username:
            raise InvalidToken(f"the token has no {trusted.username_claim} claim")
        scope = claims.get(trusted.scope_claim, "")
        granted = frozenset(scope.split() if isinstance(scope, str) else scope or [])
        jti = str(claims.get("jti") or "")
        directory = self.provider.directory
        account = directory.find_user(username)
        if account is not None and account.active and account.hospital == trusted.hospital:
            principal = directory.principal(account.id, jti)
            if principal is None:
                raise InvalidToken("the user is disabled or removed")
        else:  # not a user of ours: the provider's roles, mapped to ours, in its hospital
            theirs = claims.get(trusted.roles_claim) or []
            roles = frozenset(trusted.role_map[r] for r in theirs if isinstance(r, str) and r in trusted.role_map)
            principal = Principal(kind="user", id=f"{trusted.hospital}:{username}", hospital=trusted.hospital,
                                  roles=roles, permissions=directory.role_permissions(roles),
                                  visibility=Visibility(hospitals=frozenset({trusted.hospital})), token_id=jti)
        if granted & PERMISSION_SCOPES:  # the provider narrowed the token: honour it
            principal = replace(principal, permissions=principal.permissions & granted)
        return replace(principal, extra={**principal.extra, "issuer": trusted.issuer})

    def _decode_external(self, token: str, trusted: TrustedIssuer, audience: str | None = None) -> dict[str, Any]:
        kid = _peek_kid(token)
        for attempt in range(2):
            keys = self._keys(trusted, refresh=attempt > 0)
            if attempt == 0 and kid is not None and all(k.kid != kid for k in keys):
                continue  # a key we do not know yet: the provider may have rotated
            try:
                decoded = jwt.decode(token, keys, algorithms=list(trusted.algorithms))
            except JoseError:
                raise InvalidToken("the token's signature or algorithm is not accepted") from None
            except (ValueError, TypeError):
                raise InvalidToken("the token is malformed") from None
            try:
                jwt.JWTClaimsRegistry(
                    leeway=EXTERNAL_LEEWAY_S, iss={"essential": True, "value": trusted.issuer},
                    aud={"essential": True, "value": audience or trusted.audience}, exp={"essential": True},
                ).validate(decoded.claims)
            except JoseError as exc:
                raise InvalidToken(f"the token's claims are not accepted ({exc.description})") from None
            return dict(decoded.claims)
        raise InvalidToken("the token was signed by a key the issuer does not publish")

    def _keys(self, trusted: TrustedIssuer, refresh: bool) -> KeySet:
        with self._lock:  # one fetch at a time per process; the others wait for its result
            cached = self._jwks.setdefault(trusted.issuer, _Jwks())
            now = time.monotonic()
            if refresh and now - cached.missed >= JWKS_RETRY_S:
                cached.missed = now
            elif cached.keys is not None and now - cached.fetched < JWKS_TTL_S:
                return cached.keys
            try:
                reply = self.http.get(trusted.jwks_uri)
                reply.raise_for_status()
                cached.keys = KeySet.import_key_set(reply.json())
                cached.fetched = now
            except (httpx.HTTPError, ValueError, JoseError) as exc:
                log.warning("cannot fetch the JWKS of %s: %s", trusted.issuer, type(exc).__name__)
                if cached.keys is None:
                    raise InvalidToken("the issuer's keys cannot be fetched") from None
            return cached.keys


def _segment(token: str, i: int) -> Any:
    part = token.split(".")[i]
    return orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _peek_kid(token: str) -> str | None:
    try:
        header = _segment(token, 0)
    except (ValueError, orjson.JSONDecodeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def _peek_issuer(token: str) -> str | None:
    """The `iss` of a JWT-shaped token, unverified: it only chooses which keys and algorithms to use."""
    if token.count(".") != 2:
        return None
    try:
        claims = _segment(token, 1)
    except (ValueError, orjson.JSONDecodeError):
        raise InvalidToken("the token is malformed") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str):
        raise InvalidToken("the token has no issuer")
    return str(claims["iss"]).rstrip("/")
