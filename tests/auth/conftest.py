"""Fixtures of the auth tests: the built app's route table and a server with users in it."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.routing import BaseRoute, Mount

from tests.frontends.conftest import open_page  # noqa: F401 - the Chromium page fixture (tests/frontends)
from yunying.settings import Settings

SAMPLE = {"frames": "1", "path": "x"}  # any other parameter: a UID-looking value


def sample_path(template: str) -> str:
    """A concrete URL path for a route template ({study} -> 1.2.3, {frames} -> 1 ...)."""
    return re.sub(r"{(\w+)(:\w+)?}", lambda m: SAMPLE.get(m.group(1), "1.2.3"), template)


def walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, template) for every handler of the app, Mounts included."""
    for route in routes:
        if isinstance(route, Mount):
            yield from walk(list(route.routes), prefix + route.path)
            continue
        path = prefix + getattr(route, "path", "")
        methods = getattr(route, "handled", None) or getattr(route, "methods", None) or {"GET"}
        for method in sorted(set(methods) - {"HEAD"}):
            yield method, path


@pytest.fixture(scope="module")
def built_routes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    """Every (method, path template) of the app `yunying serve` builds."""
    from dicomweb.app import build_app
    from frontends.static import mount_frontends
    from yunying.archive import Archive

    data = tmp_path_factory.mktemp("built") / "data"
    archive = Archive(data)
    try:
        app = build_app(archive, Settings(data=Path(data)))
        mount_frontends(app)  # as `yunying serve` does: the pages and their server-side routes
        return sorted(set(walk(list(app.routes))))
    finally:
        archive.close()
