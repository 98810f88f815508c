"""Serves the static front ends (plain HTML, CSS, ES modules: no build step) from the package.

The composition root calls `mount_frontends(app)`; the auth middleware treats every prefix in
`STATIC_PREFIXES` as an open route (the pages hold no patient data: they fetch it over DICOMweb
with the user's token).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from frontends.viewer.routes import routes as viewer_routes

HERE = Path(__file__).resolve().parent
# URL prefix -> folder under frontends/; `common` holds shared ES modules, `i18n` the catalogs.
# Not `login/`: it holds the login pages' templates, rendered by dicomweb/login.py (which serves
# login.css itself); mounted, /login/page.html etc. would be served raw.
FOLDERS: dict[str, str] = {
    "/viewer": "viewer",
    "/admin/audit": "audit",  # before /admin, which would take it; open through /admin's rule
    "/admin/security": "security",  # the security administrator's page (issue 12 part 5)
    "/admin/jobs": "jobs",  # collectors and background jobs (issue 15 part 8); likewise
    "/admin/matching": "matching",  # the unmatched-studies queue (issue 15 part 4), likewise
    "/admin/mpi": "mpi",  # patient master index review (issue 15 part 5)
    "/admin/routing": "routing",  # routing rules and queue (issue 15 part 7)
    "/admin": "admin",
    "/portal/console": "console",  # the delivery console, before /portal; open through /portal's rule
    "/portal": "portal",
    "/common": "common",
    "/i18n": "i18n",
}
STATIC_PREFIXES: tuple[str, ...] = tuple(FOLDERS)


@dataclass
class _Kept:
    """One file in memory with its validator."""

    path: str
    mtime_ns: int
    size: int
    media_type: str
    etag: str
    body: bytes

    @classmethod
    def load(cls, path: str, media_type: str) -> _Kept:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
        return cls(path, st.st_mtime_ns, st.st_size, media_type,
                   'W/"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"', data)  # weak: one tag for every coding

    def current(self) -> bool:
        """Still the file on disk (a new release replaces files under a running server in development)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return st.st_mtime_ns == self.mtime_ns and st.st_size == self.size


class KeptFiles(StaticFiles):
    """Starlette's StaticFiles (path checks, index.html, redirects, 404) with each file kept in
    memory once served: a page's twenty-odd modules are answered without a stat and a file read
    in a worker thread each (the viewer's first image waits for them); the archive's
    ContentCoding middleware encodes them as the browser asks (br, zstd, gzip). Every answer
    carries `Cache-Control: no-cache`: the browser keeps the files but asks with the ETag each
    time (a 304), so a new release is picked up at once; heuristic freshness would serve stale JS."""

    def __init__(self, *, directory: Path) -> None:
        super().__init__(directory=directory, html=True, check_dir=True)
        self._kept: dict[tuple[str, bool], _Kept] = {}

    async def get_response(self, path: str, scope: Scope) -> Response:
        key = (path, scope["path"].endswith("/"))  # "/viewer" redirects where "/viewer/" is the page
        kept = self._kept.get(key) if scope["method"] in ("GET", "HEAD") else None
        if kept is None or not kept.current():
            response = await super().get_response(path, scope)
            if not isinstance(response, FileResponse) or response.status_code != 200:
                return _no_cache(response)
            fresh = await anyio.to_thread.run_sync(_Kept.load, str(response.path), response.media_type or "")
            self._kept[key] = kept = fresh
        return self._answer(kept, scope)

    @staticmethod
    def _answer(kept: _Kept, scope: Scope) -> Response:
        headers = {"ETag": kept.etag, "Cache-Control": "no-cache"}
        request_headers = dict(scope["headers"])
        tags = request_headers.get(b"if-none-match", b"").decode("latin-1")
        if tags and (tags.strip() == "*" or kept.etag[2:] in tags):  # weak comparison (RFC 9110 13.1.2)
            return Response(status_code=304, headers=headers)
        response = Response(kept.body, media_type=kept.media_type, headers=headers)
        if scope["method"] == "HEAD":
            response.body = b""  # the length stays that of the GET's body
        return response


def _no_cache(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-cache"
    return response


class PagesOnly:
    """404 for Python files and bytecode: a front end's server-side router lives beside its pages
    (frontends/viewer/routes.py) but is code of the server, not a file of the page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if path.endswith((".py", ".pyc")) or "__pycache__" in path:
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def static_app(folder: Path) -> ASGIApp:
    """One folder served with index.html for directories, ETag/304 (content coding: the app's middleware)."""
    return PagesOnly(KeptFiles(directory=folder))


def mount_frontends(app: object, root: Path = HERE) -> list[str]:
    """Mount every front-end folder that exists under `root`; return the mounted prefixes."""
    mounted = []
    for prefix, name in FOLDERS.items():
        folder = root / name
        if folder.is_dir():
            app.router.routes.append(Mount(prefix, app=static_app(folder), name=f"frontend-{name}"))  # type: ignore[attr-defined]
            mounted.append(prefix)
    app.router.routes.extend(viewer_routes())  # type: ignore[attr-defined]  # the viewer's /api/viewer/sr
    return mounted
