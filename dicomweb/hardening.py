"""Response headers every answer carries (issue 12 parts 7-8): HSTS when served over TLS
(RFC 6797), no MIME sniffing, no Referer leaking a study URL to another site."""
from __future__ import annotations

from typing import Any

HSTS_SECONDS = 31_536_000  # one year


class SecurityHeaders:
    """An ASGI wrapper adding the headers to every HTTP response start."""

    def __init__(self, app: Any, hsts: bool = False) -> None:
        self.app = app
        extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
        if hsts:
            extra.append((b"strict-transport-security", f"max-age={HSTS_SECONDS}".encode()))
        self.extra = extra

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []),
                                                  *(h for h in self.extra if h[0] not in present)]}
            await send(message)
        await self.app(scope, receive, with_headers)
