"""Admin JSON API for OAuth clients (the same registry as `yunying oauth clients`).

`admin` manages every hospital's clients; a hospital's security admin (`security.manage`) only
its own hospital's. A confidential client's secret is in the creation answer, once.
"""
from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dicomweb.accounts import field, json_body, json_response
from yunying.auth.errors import InvalidRequest, NotFound
from yunying.auth.oidc.models import Client
from yunying.auth.oidc.store import ClientError, OAuthStore
from yunying.auth.principal import ADMIN, Principal

PATH = "/api/admin/oauth-clients"


def routes(store: OAuthStore) -> list[Route]:
    api = ClientsApi(store)
    return [Route(PATH, api.list, methods=["GET"]), Route(PATH, api.add, methods=["POST"]),
            Route(PATH + "/{client_id}", api.remove, methods=["DELETE"])]


def describe(c: Client) -> dict[str, Any]:
    return {"client_id": c.client_id, "name": c.name, "public": c.public, "hospital": c.hospital, "scope": c.scope,
            "grant_types": list(c.grant_types), "redirect_uris": list(c.redirect_uris)}


def _hospitals(request: Request) -> str | None:
    """None: every hospital (platform admin); else the caller's hospital only."""
    principal: Principal = request.state.principal
    return None if principal.may(ADMIN) else principal.hospital or ""


class ClientsApi:
    def __init__(self, store: OAuthStore) -> None:
        self.store = store

    async def list(self, request: Request) -> Response:
        only = _hospitals(request)
        clients = await asyncio.to_thread(self.store.list_clients)
        return json_response([describe(c) for c in clients if only is None or c.hospital == only])

    async def add(self, request: Request) -> Response:
        body = await json_body(request)
        only = _hospitals(request)
        hospital = field(body, "hospital", required=False) or only or "default"
        if only is not None and hospital != only:
            raise NotFound(f"no hospital {hospital}")  # another hospital does not exist for this caller
        uris = field(body, "redirect_uris", list, required=False) or []
        grants = field(body, "grant_types", list, required=False)
        public = field(body, "public", bool)
        if not all(isinstance(u, str) for u in uris) or not all(isinstance(g, str) for g in grants or []):
            raise InvalidRequest("redirect_uris and grant_types: lists of strings")
        grants = grants or (["authorization_code", "refresh_token"] if uris else ["client_credentials"])
        try:
            client_id, secret = await asyncio.to_thread(
                self.store.add_client, field(body, "name"), uris, field(body, "scope"), grants, public, hospital,
                field(body, "client_id", required=False))
        except ClientError as exc:
            raise InvalidRequest(str(exc)) from None
        answer = {"client_id": client_id, **({"client_secret": secret} if secret else {})}
        return json_response(answer, 201)

    async def remove(self, request: Request) -> Response:
        client_id = request.path_params["client_id"]
        client = await asyncio.to_thread(self.store.get_client, client_id)
        only = _hospitals(request)
        if client is None or (only is not None and client.hospital != only):
            raise NotFound(f"no client {client_id}")
        await asyncio.to_thread(self.store.remove_client, client_id)
        return Response(status_code=204)
