"""OPTIONS and the capabilities description (PS3.18 8.9, Annex H)."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response


async def capabilities(request: Request) -> Response:
    """OPTIONS (and GET) on the DICOMweb root."""
    return Response(status_code=204, headers={"Allow": "GET, HEAD, OPTIONS"})


async def statement(request: Request) -> Response:
    """GET /dicomweb/conformance: the conformance statement generated from the running configuration."""
    from dicomweb.http import media_matches, parse_accept
    from yunying.errors import NotAcceptable, UnknownResource

    docs: dict[str, str] = request.app.state.statement
    if not docs:
        raise UnknownResource("no conformance statement was generated for this server")
    for r in parse_accept(request.headers.get("accept")):
        for media, text in docs.items():
            if media_matches(r.type, media):
                return Response(text, media_type=media)
    raise NotAcceptable("the statement is served as " + " or ".join(docs))
