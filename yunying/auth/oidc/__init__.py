"""Yunying as an OAuth 2.0 authorization server and OpenID Connect provider (issue 11, part 2).

authlib's core classes (RFC 6749 grants, RFC 7636 PKCE, RFC 7009 revocation, RFC 7662
introspection, OpenID Connect Core) adapted to Starlette; JWT access tokens (RFC 9068) signed
with an ES256 key kept in a file outside the database; tokens of hospitals' own providers
accepted by issuer. `mount(settings, auth)` is what the composition root calls; the HTTP face
(routes, login pages) is dicomweb/oidc.py and dicomweb/login.py.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from yunying.auth.oidc.config import oidc_config
from yunying.auth.oidc.keys import load_keys
from yunying.auth.oidc.provider import Provider
from yunying.auth.oidc.store import OAuthStore
from yunying.auth.oidc.users import Directory
from yunying.auth.oidc.verify import TokenVerifier
from yunying.auth.oidc.webclient import ensure_web_client
from yunying.auth.store import Store
from yunying.settings import Settings

__all__ = ["Oidc", "build_oidc", "mount"]
log = logging.getLogger("yunying.auth.oidc")


@dataclass
class Oidc:
    provider: Provider
    verifier: TokenVerifier  # (token) -> Principal | None, raises InvalidToken; blocking


def build_oidc(settings: Settings, store: Store, directory: Directory) -> Oidc:
    """The provider, its bearer verifier and its routes for this configuration."""
    config = oidc_config(settings)
    provider = Provider(config, OAuthStore(store), load_keys(config.key_dir), directory)
    verifier = TokenVerifier(provider)
    return Oidc(provider, verifier)


def mount(settings: Settings, auth: Any) -> Oidc:
    """Build the provider over the app-state store and plug its JWT verifier into the authorization point."""
    from yunying import pii
    from yunying.auth.identify import register_bearer_verifier
    from yunying.auth.oidc.directory import AuthDirectory

    def keys() -> pii.PiiKeys:  # seal second-factor secrets; cached by the key file's mtime
        return pii.keys_for(settings.data, settings.pii_key_file)

    keys()  # a missing or bad key file stops the start, not a login
    oidc = build_oidc(settings, auth.store, AuthDirectory(auth.store, keys))
    register_bearer_verifier(oidc.verifier)
    ensure_web_client(oidc.provider.store, oidc.provider.config.issuer)  # our own pages' public client
    issuer = oidc.provider.config.issuer
    if not oidc.provider.config.secure and urlsplit(issuer).hostname not in ("localhost", "127.0.0.1", "::1"):
        # authlib refuses OAuth over plain http off loopback (RFC 6749 §3.1): say so at start, not at login
        log.warning("oidc_issuer %s is not https: the login endpoints answer insecure_transport; set "
                    "oidc_issuer to the https URL users reach (a TLS proxy in front)", issuer)
    return oidc
