"""The built-in public OAuth client of our own pages (viewer, admin): `yunying-web`.

Our pages sign people in like any browser app: authorization code + PKCE S256 against this
provider, then refresh-token rotation. The client is registered at every start, idempotently;
its redirect URIs are the pages' own paths under `oidc_issuer` (exact match, so a page opened
through another host name than the issuer cannot sign in: set oidc_issuer to the URL users reach).
"""
from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from yunying.auth.oidc.store import ClientError, OAuthStore
from yunying.auth.oidc.tokens import SCOPES
from yunying.auth.principal import DEFAULT_HOSPITAL

CLIENT_ID = "yunying-web"
NAME = "Yunying pages (built in)"
# each page is its own redirect URI: it completes its own sign-in
PAGES = ("/viewer/", "/admin/", "/admin/audit/", "/admin/security/", "/admin/matching/", "/admin/mpi/",
         "/admin/routing/", "/portal/console/")
GRANTS = ["authorization_code", "refresh_token"]
# everything a page may need; a token carries only what the user holds (tokens.granted_scope)
SCOPE = " ".join(sorted(SCOPES))


def redirect_uris(issuer: str) -> list[str]:
    return [issuer.rstrip("/") + page for page in PAGES]


def ensure_web_client(store: OAuthStore, issuer: str) -> None:
    """Register `yunying-web`, or bring its redirect URIs and scope up to date (a changed issuer)."""
    uris = redirect_uris(issuer)
    current = store.get_client(CLIENT_ID)
    if current is None:
        try:
            store.add_client(NAME, uris, SCOPE, GRANTS, True, DEFAULT_HOSPITAL, CLIENT_ID)
        except (ClientError, IntegrityError):
            pass  # another worker process registered it at the same moment
    elif list(current.redirect_uris) != uris or current.scope != SCOPE or not current.public:
        store.update_client(CLIENT_ID, uris, SCOPE, GRANTS)
