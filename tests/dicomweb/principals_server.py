"""A real archive server process whose requests carry test principals (issue 11's contract).

Until the `auth` branch's middleware is merged, nothing sets `request.state.principal`; this
runs the real DICOMweb app under uvicorn behind a stand-in middleware that does only what the
contract says: a bearer token -> a Principal (from YUNYING_TEST_PRINCIPALS, a JSON object
token -> {"hospital", "department", "visibility": {...}}), 401 for anything else. Tests only.

    python -m tests.dicomweb.principals_server DATA_DIR PORT
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from dicomweb.app import build_app
from yunying.archive import Archive
from yunying.auth.principal import (
    DICOMWEB_DELETE,
    DICOMWEB_READ,
    DICOMWEB_WRITE,
    Principal,
    Visibility,
)
from yunying.settings import Settings


def principal(token: str, spec: dict[str, Any]) -> Principal:
    vis = spec.get("visibility", {})
    departments = vis.get("departments")
    return Principal(
        kind="system", id=f"test-{token[:4]}", hospital=spec.get("hospital", "default"),
        permissions=frozenset({DICOMWEB_READ, DICOMWEB_WRITE, DICOMWEB_DELETE}),
        visibility=Visibility(everything=vis.get("everything", False),
                              hospitals=frozenset(vis.get("hospitals", ())),
                              departments=None if departments is None else frozenset(departments),
                              studies=frozenset(vis.get("studies", ())), series=frozenset(vis.get("series", ()))),
        extra={"department": spec["department"]} if spec.get("department") else {})


class StandIn:
    """Sets scope["state"]["principal"] (request.state.principal) from the bearer token."""

    def __init__(self, app: ASGIApp, principals: dict[str, Principal]) -> None:
        self.app, self.principals = app, principals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        found = self.principals.get(auth.removeprefix("Bearer ").strip())
        if found is None:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        scope.setdefault("state", {})["principal"] = found
        await self.app(scope, receive, send)


def main() -> None:
    data, port = Path(sys.argv[1]), int(sys.argv[2])
    specs = json.loads(os.environ["YUNYING_TEST_PRINCIPALS"])
    settings = Settings(data=data, http_port=port, dimse_port=0, ingest_processes=0)
    archive = Archive(data, ingest_processes=0)
    app = StandIn(build_app(archive, settings), {t: principal(t, s) for t, s in specs.items()})
    try:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    finally:
        archive.close()


if __name__ == "__main__":
    main()
