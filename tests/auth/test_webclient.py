"""The built-in client of our own pages, `yunying-web`: registered at start, idempotently, its
redirect URIs following oidc_issuer, public (PKCE, no secret)."""
from __future__ import annotations

from pathlib import Path

from yunying.auth.oidc.store import OAuthStore
from yunying.auth.oidc.tokens import SCOPES
from yunying.auth.oidc.webclient import CLIENT_ID, ensure_web_client
from yunying.auth.store import open_store


def test_registered_once_and_follows_the_issuer(tmp_path: Path) -> None:
    store = OAuthStore(open_store(tmp_path))
    ensure_web_client(store, "http://127.0.0.1:8042")
    ensure_web_client(store, "http://127.0.0.1:8042")  # a restart
    assert [c.client_id for c in store.list_clients()].count(CLIENT_ID) == 1
    client = store.get_client(CLIENT_ID)
    assert client is not None and client.public
    assert client.redirect_uris == tuple(f"http://127.0.0.1:8042{p}" for p in (
        "/viewer/", "/admin/", "/admin/audit/", "/admin/security/", "/admin/matching/", "/admin/mpi/",
        "/admin/routing/", "/portal/console/"))
    assert set(client.scope.split()) == set(SCOPES)
    assert client.check_grant_type("refresh_token") and not client.check_grant_type("client_credentials")

    family = store.new_family(CLIENT_ID, "u1")  # a signed-in page's grant survives the issuer change
    ensure_web_client(store, "https://pacs.hospital.example/")
    moved = store.get_client(CLIENT_ID)
    assert moved is not None and moved.redirect_uris[:2] == ("https://pacs.hospital.example/viewer/",
                                                              "https://pacs.hospital.example/admin/")
    assert not store.is_revoked(None, family)
