"""Yunying as an OAuth 2.0 authorization server and OpenID Connect provider (issue 11, part 2).

authlib's core classes (RFC 6749 grants, RFC 7636 PKCE, RFC 7009 revocation, RFC 7662
introspection, OpenID Connect Core) adapted to Starlette; JWT access tokens (RFC 9068) signed
with an ES256 key kept in a file outside the database; tokens of hospitals' own providers
accepted by issuer. `build_oidc` is what the composition root calls.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from yunying.auth.oidc.config import oidc_config
from yunying.auth.oidc.keys import load_keys
from yunying.auth.oidc.provider import Provider
from yunying.auth.oidc.store import OAuthStore
from yunying.auth.oidc.users import Directory
from yunying.auth.oidc.verify import InvalidToken, TokenVerifier
from yunying.settings import Settings

__all__ = ["Oidc", "build_oidc", "InvalidToken"]


@dataclass
class Oidc:
    provider: Provider
    verifier: TokenVerifier  # async (token) -> Principal | None, raises InvalidToken
    routes: list[Any]  # Starlette routes, all listed in OPEN_PATHS except userinfo
    open_paths: tuple[str, ...]


def build_oidc(settings: Settings, engine: Engine, directory: Directory) -> Oidc:
    """The provider, its bearer verifier and its routes for this configuration."""
    from yunying.auth.oidc.routes import OPEN_PATHS, OidcRoutes  # the HTTP face (Starlette)

    config = oidc_config(settings)
    provider = Provider(config, OAuthStore(engine), load_keys(config.key_dir), directory)
    verifier = TokenVerifier(provider)
    return Oidc(provider, verifier, OidcRoutes(provider, verifier).routes(), OPEN_PATHS)
