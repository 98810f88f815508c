"""The one place an unexpected exception becomes a 500, logged without patient data (issue 10 part 8).

Starlette's handler for `Exception` runs in ServerErrorMiddleware, which re-raises after
answering, so uvicorn logged the whole traceback, exception message included, and a message
may quote values of the data set. Here, inside that middleware, the exception is logged as the
DIMSE side logs it (type, errno, the frames it passed through) and never re-raised.
"""
from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.responses import Response

from yunying.logsafe import summary

log = logging.getLogger("yunying.http")


class ContainErrors:
    """ASGI middleware: a 500 with a JSON reason when nothing was sent yet, a log line always."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:  # noqa: BLE001 - the edge: every unexpected failure ends here
            # the path carries UIDs only (query strings, which may hold names, are left out)
            log.error("unexpected error on %s %s: %s", scope.get("method"), scope.get("path"), summary(exc))
            if not started:
                body = orjson.dumps({"status": 500, "error": "internal error; see the server log"})
                await Response(body, status_code=500, media_type="application/json")(scope, receive, send)
