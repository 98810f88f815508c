"""Serves the static front ends (plain HTML, CSS, ES modules: no build step) from the package.

The composition root calls `mount_frontends(app)`; the auth middleware treats every prefix in
`STATIC_PREFIXES` as an open route (the pages hold no patient data: they fetch it over DICOMweb
with the user's token).
"""
from __future__ import annotations

from pathlib import Path

from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class Revalidate:
    """Adds `Cache-Control: no-cache`: the browser keeps the files but asks with the ETag each
    time (a 304), so a new release is picked up at once; heuristic freshness would serve stale JS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"cache-control", b"no-cache")]
            await send(message)

        await self.app(scope, receive, send_with_header)


def static_app(folder: Path) -> ASGIApp:
    """One folder served with index.html for directories, ETag/304, gzip for text."""
    files = StaticFiles(directory=folder, html=True, check_dir=True)
    return GZipMiddleware(Revalidate(files), minimum_size=512)


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
