"""Doubled slashes in request paths (issue 10 part 10).

Clients build `{base}/studies` from a base URL that already ends in `/`, and ask for
`/dicomweb//studies`; Orthanc serves that. Empty path segments carry no meaning in the URL
table, so they are collapsed before routing (and before the authorization point sees the path).
"""
from __future__ import annotations

import re
from typing import Any

_SLASHES = re.compile(r"/{2,}")


class CollapseSlashes:
    """ASGI middleware: `//` -> `/` in the request path."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and "//" in scope.get("path", ""):
            scope = dict(scope)
            scope["path"] = _SLASHES.sub("/", scope["path"])
            raw = scope.get("raw_path")
            if raw:
                scope["raw_path"] = re.sub(rb"/{2,}", b"/", raw)
        await self.app(scope, receive, send)
