"""Who asks, and what exists for them: the one helper every DICOMweb handler uses (issue 11).

The authorization middleware puts a `Principal` on `request.state.principal`. A study outside
its visibility answers exactly as an unknown one (404, same body) at every level; QIDO-RS
filters inside the index query (yunying.scope). The check costs a dict lookup on the hot path
(frames): the study's owner is cached by the index per write generation.
"""
from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from index.model import Origin
from index.query import Query
from yunying.archive import Archive, not_stored
from yunying.auth.principal import DEFAULT_HOSPITAL, NOTHING, Principal
from yunying.scope import scoped, visible, visible_now

# No middleware in front (a mis-wired app): the asker sees nothing (fail closed).
_UNAUTHENTICATED = Principal(kind="anonymous", id="no-auth-middleware", hospital=None,
                             visibility=NOTHING)


def principal_of(request: Request) -> Principal:
    """The principal the authorization middleware identified."""
    principal = getattr(request.state, "principal", None)
    return _UNAUTHENTICATED if principal is None else principal


async def require_visible(request: Request, study: str, series: str | None = None,
                          sop: str | None = None) -> None:
    """Raise the unknown-resource error of the URL's deepest UID unless the study (or, for a
    series-bound grant, the series) exists for the asker."""
    archive: Archive = request.app.state.archive
    visibility = principal_of(request).visibility
    seen = visible_now(archive, visibility, study, series)
    if seen is None:  # not in memory: the index is read off the event loop
        seen = await run_in_threadpool(visible, archive, visibility, study, series)
    if not seen:
        raise not_stored(study, series, sop)


async def require_path_visible(request: Request) -> None:
    """require_visible for the study / series / instance of the request's path."""
    p = request.path_params
    await require_visible(request, p["study"], p.get("series"), p.get("sop"))


def scoped_query(request: Request, query: Query) -> Query:
    """The query limited to what the asker may see."""
    return scoped(query, principal_of(request).visibility)


def origin_of(request: Request) -> Origin:
    """A STOW-RS origin: the storing principal's hospital (and department, when its identity
    carries one) owns what it stores."""
    principal = principal_of(request)
    client = request.client.host if request.client else ""
    # source stays the client's address: it qualifies PatientID when nothing else does (rule 6)
    return Origin("stow", client, "", principal.hospital or DEFAULT_HOSPITAL,
                  principal.extra.get("department"))
