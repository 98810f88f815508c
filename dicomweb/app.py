"""The DICOMweb application: the whole URL surface in one table, one place that renders errors."""
from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

import yunying.auth
import yunying.auth.oidc
from dicomweb import (
    accounts,
    admin_api,
    audit_api,
    capabilities,
    collect_api,
    frames,
    mpi_api,
    qido,
    records_api,
    rendered,
    routing_api,
    stow,
    wado,
    wado_uri,
)
from dicomweb import oidc as oidc_face
from dicomweb.edge import Edge
from dicomweb.hardening import RateLimit
from dicomweb.http import DICOMWEB_ROOT
from dicomweb.portal import routes as portal_routes
from dicomweb.rendering import ByteLRU, ChosenRows
from dicomweb.volumes import Volumes
from dicomweb.wado_stream import DigestMemo
from yunying.archive import Archive
from yunying.audit.middleware import AuditMiddleware
from yunying.auth import Auth
from yunying.auth.middleware import AuthMiddleware
from yunying.errors import ArchiveError
from yunying.logsafe import summary
from yunying.settings import Settings

log = logging.getLogger("yunying.http")
S, SE, I = "/studies/{study}", "/series/{series}", "/instances/{sop}"

# PS3.18 Table 10.1-1 (resources) and Table 10.3-1 (transactions), plus DELETE (our extension)
ROUTES: list[tuple[str, list[str], object]] = [
    ("/studies", ["GET"], qido.search_studies),
    ("/studies", ["POST"], stow.stow),
    (S, ["GET"], wado.retrieve),
    (S, ["POST"], stow.stow),
    (S, ["DELETE"], wado.delete),
    (S + "/metadata", ["GET"], wado.metadata),
    (S + "/series", ["GET"], qido.search_series),
    (S + "/instances", ["GET"], qido.search_instances),
    (S + SE, ["GET"], wado.retrieve),
    (S + SE, ["DELETE"], wado.delete),
    (S + SE + "/metadata", ["GET"], wado.metadata),
    (S + SE + "/instances", ["GET"], qido.search_instances),
    (S + SE + I, ["GET"], wado.retrieve),
    (S + SE + I, ["DELETE"], wado.delete),
    (S + SE + I + "/metadata", ["GET"], wado.metadata),
    (S + SE + I + "/frames/{frames}", ["GET"], frames.frames),
    (S + SE + I + "/bulkdata/{path:path}", ["GET"], wado.bulkdata),
    ("/series", ["GET"], qido.search_series),
    ("/instances", ["GET"], qido.search_instances),
    # rendered and thumbnail resources (PS3.18 10.4.1.1.3-4) at every level
    (S + "/rendered", ["GET"], rendered.rendered),
    (S + SE + "/rendered", ["GET"], rendered.rendered),
    (S + SE + I + "/rendered", ["GET"], rendered.rendered),
    (S + SE + I + "/frames/{frames}/rendered", ["GET"], rendered.rendered),
    (S + "/thumbnail", ["GET"], rendered.thumbnail),
    (S + SE + "/thumbnail", ["GET"], rendered.thumbnail),
    (S + SE + I + "/thumbnail", ["GET"], rendered.thumbnail),
    (S + SE + I + "/frames/{frames}/thumbnail", ["GET"], rendered.thumbnail),
    (S + SE + "/reformat", ["GET"], rendered.reformat),  # our extension: MPR / MIP slices
    ("", ["OPTIONS", "GET"], capabilities.capabilities),  # PS3.18 8.9: the service's capabilities
    ("/", ["OPTIONS", "GET"], capabilities.capabilities),
    ("/conformance", ["GET"], capabilities.statement),
    ("/wado", ["GET"], wado_uri.wado_uri),  # PS3.18 9: WADO-URI links (issue 10 part 10)
]


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    """Every error has one shape: {"status": N, "error": reason}."""
    return Response(orjson.dumps({"status": status, "error": reason}), status_code=status,
                    media_type="application/json", headers=headers)


async def on_archive_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ArchiveError)
    wait = getattr(exc, "retry_after", None)  # a throttle's 429 says when to come back (RFC 6585 4)
    return error_response(exc.http_status, exc.reason, {"Retry-After": str(wait)} if wait else None)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """A failure outside dicomweb.edge's containment (e.g. in CORS) becomes a 500 the same way (no patient data logged)."""
    log.error("unexpected error on %s %s: %s", request.method, request.url.path, summary(exc))
    return error_response(500, "internal error; see the server log")


def _merge(routes: list[tuple[str, list[str], object]]) -> list[Route]:
    by_path: dict[str, list[tuple[list[str], object]]] = {}
    for path, methods, endpoint in routes:
        by_path.setdefault(path, []).append((methods, endpoint))
    out = []
    for path, handlers in by_path.items():
        table = {m: ep for methods, ep in handlers for m in methods}

        async def dispatch(request: Request, table=table) -> Response:
            endpoint = table.get(request.method) or (table.get("GET") if request.method == "HEAD" else None)
            if endpoint is None:
                allow = ", ".join(sorted(set(table) | ({"HEAD"} if "GET" in table else set()) | {"OPTIONS"}))
                if request.method == "OPTIONS":
                    return Response(status_code=204, headers={"Allow": allow})
                return error_response(405, f"{request.method} is not allowed here", {"Allow": allow})
            return await endpoint(request)

        route = Route(DICOMWEB_ROOT + path, dispatch, methods=["GET", "HEAD", "POST", "PUT", "DELETE",
                                                               "OPTIONS", "PATCH"])
        route.handled = handled_methods(table)  # type: ignore[attr-defined]
        out.append(route)
    # the most frequent first: frames (a viewer's bulk), then QIDO-RS /studies (each matched
    # pattern costs ~1 us), then deepest first; the patterns never overlap (different literals
    # or depths), so the order changes no answer
    first = (DICOMWEB_ROOT + S + SE + I + "/frames/{frames}", DICOMWEB_ROOT + "/studies")
    return sorted(out, key=lambda route: (first.index(route.path) if route.path in first else len(first),
                                          -route.path.count("/")))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """At server start, after the composition root has loaded everything: what exists now
    (modules, the index catalog, the route and policy tables, ~340k objects) lives as long as
    the process, so the cyclic collector stops walking it (gc.freeze). Without it, each full
    collection walked all of it (~115 ms, on the request that triggered it) and the younger
    ones paid for the bigger heap: ~80 us of CPU per QIDO request (issue 11's cost target)."""
    gc.collect()
    gc.freeze()
    yield


def build_app(archive: Archive, settings: Settings, statement: dict[str, str] | None = None,
              auth: Auth | None = None) -> Starlette:
    """The ASGI app serving the archive's HTTP face; statement: {"text/markdown": …, "text/html": …}.

    Every request passes the one authorization point (yunying.auth.middleware) first; without
    an `auth` the store is opened from the settings (secure by default, never open).
    """
    auth = auth or yunying.auth.start(settings)
    # outermost: nothing unexpected reaches uvicorn's log, `//` collapsed before routing and auth,
    # security headers on every answer (issue 12 parts 7-8); inside it, entered only by a request
    # they can act on: hardening.Digests (Repr-Digest / Content-MD5 of the bytes sent, issue 12),
    # then coding.ContentCoding (br / zstd / gzip as Accept-Encoding asks, RFC 9110 8.4)
    middleware = [Middleware(Edge, hsts=bool(settings.tls_cert), frame_ancestors=settings.frame_ancestors,
                             cross_origin=bool(settings.cors_origins), binary=settings.compress_frames)]
    if settings.cors_origins:  # outside the auth check: preflights and refusals carry CORS headers
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"], expose_headers=["Warning", "ETag", "Content-Location", "WWW-Authenticate"]))
    oidc = yunying.auth.oidc.mount(settings, auth)  # OAuth 2.0 / OIDC provider; plugs its JWT verifier in
    routes = (_merge(ROUTES) + accounts.routes() + admin_api.routes() + portal_routes() + oidc_face.routes(oidc)
              + audit_api.routes() + collect_api.routes()  # jobs, metrics, collectors, lifecycle (issue 15)
              + records_api.routes()  # hospital records, HL7, matching (issue 15)
              + mpi_api.routes() + routing_api.routes())  # master index, routing (issue 15)
    middleware.append(Middleware(AuditMiddleware))  # outside auth: its refusals are recorded too (issue 12)
    middleware.append(Middleware(AuthMiddleware, identifier=auth.identifier, route_exists=_route_exists(routes)))
    if settings.rate_limit:  # inside auth: counted per principal (issue 12 part 8)
        middleware.append(Middleware(RateLimit, per_second=settings.rate_limit))
    middleware.append(Middleware(collect_api.RefetchPurged))  # issue 15 part 6: a purged study comes back
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers={
        ArchiveError: on_archive_error, HTTPException: on_http_error, Exception: on_unexpected})
    app.state.archive = archive
    app.state.settings = settings
    app.state.retrieve_digests = DigestMemo()  # digests of retrieve answers sent once (wado_stream)
    app.state.rendered_cache = ByteLRU(settings.render_cache_mb << 20)  # rendered images and thumbnails
    app.state.volumes = Volumes(settings.mpr_cache_mb << 20)  # decoded slices kept for reformats
    app.state.thumbnail_rows = ChosenRows()
    app.state.statement = statement or {}
    app.state.auth = auth
    app.state.oidc = oidc
    app.state.collect = None  # the Q/R collectors and the lifecycle, when the composition root starts them
    app.state.lifecycle = None
    mpi_api.start(app)  # issue 15 part 5: the master index, fed by every stored instance
    routing_api.start(app)  # issue 15 part 7: forwards by rule; the C-STORE sender is added by the CLI
    return app


def handled_methods(table: dict[str, object]) -> frozenset[str]:
    """The methods a merged route runs a handler for (others get 405; OPTIONS always answers Allow)."""
    return frozenset(table) | ({"HEAD"} if "GET" in table else set()) | {"OPTIONS"}


def _route_exists(routes: Sequence[BaseRoute]) -> Callable[[dict[str, Any]], bool]:
    """Whether a handler would run for this request: a route without a policy is refused (403);
    an unknown URL or method is left to the router (404, 405), where no handler runs."""
    def exists(scope: dict[str, Any]) -> bool:
        for route in routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return scope["method"] in getattr(route, "handled", {scope["method"]})
        return False
    return exists
