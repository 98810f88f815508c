"""WADO-RS rendered resources and thumbnails (PS3.18 10.4.1.1.3-4, 8.3.5) and server-side reformats."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from yunying.errors import UnknownResource


async def rendered(request: Request) -> Response:
    """GET …/rendered at study, series, instance and frame level."""
    raise UnknownResource("rendered resources are not available yet")


async def thumbnail(request: Request) -> Response:
    """GET …/thumbnail at study, series, instance and frame level."""
    raise UnknownResource("thumbnails are not available yet")


async def reformat(request: Request) -> Response:
    """GET /studies/{study}/series/{series}/reformat: MPR / MIP slices (our extension)."""
    raise UnknownResource("reformats are not available yet")
