"""The archive serves the front ends from the package: index pages, module MIME types, ETag/304,
gzip, no-cache revalidation, nothing outside the folders."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from starlette.applications import Starlette

from benchmarks.net import YunyingServer
from frontends.static import STATIC_PREFIXES, mount_frontends


def test_viewer_page_and_shared_files_are_served(archive: YunyingServer) -> None:
    with httpx.Client(base_url=archive.http_url, headers=archive.headers) as c:
        r = c.get("/viewer", follow_redirects=False)
        assert r.status_code in (307, 308) and r.headers["location"].endswith("/viewer/")
        page = c.get("/viewer/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        assert 'src="early.js"' in page.text  # early.js loads main.js once the first requests are out
        for path in ("/viewer/main.js", "/common/i18n.js", "/common/auth.js"):
            js = c.get(path, headers={"Accept-Encoding": "gzip"})
            assert js.status_code == 200
            assert "javascript" in js.headers["content-type"]  # ES modules need a JS MIME type
            assert js.headers.get("content-encoding") == "gzip"
        cat = c.get("/i18n/zh-CN.json")
        assert cat.json()["common.appName"] == "云影"
        again = c.get("/viewer/main.js", headers={"If-None-Match": c.get("/viewer/main.js").headers["etag"]})
        assert again.status_code == 304


def test_paths_outside_the_folders_are_not_served(archive: YunyingServer) -> None:
    with httpx.Client(base_url=archive.http_url, headers=archive.headers) as c:
        for path in ("/viewer/../static.py", "/viewer/%2e%2e/static.py", "/viewer/nothing.js", "/common/..%2fstatic.py"):
            assert c.get(path).status_code == 404, path
        # the login pages' templates are rendered by the provider, never served raw
        for path in ("/login/page.html", "/login/login.html", "/login/password.html", "/login/done.html"):
            assert c.get(path).status_code == 404, path
        assert c.get("/login/login.css").status_code == 200


def test_mount_reports_what_it_mounted(tmp_path: Path) -> None:
    (tmp_path / "viewer").mkdir()
    (tmp_path / "viewer" / "index.html").write_text("<p>v</p>")
    app = Starlette()
    assert mount_frontends(app, tmp_path) == ["/viewer"]  # absent folders are skipped
    assert set(STATIC_PREFIXES) >= {"/viewer", "/admin", "/portal", "/common", "/i18n"}
    assert "/login" not in STATIC_PREFIXES  # its folder holds templates: dicomweb/login.py renders them

    async def get() -> str:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return (await c.get("/viewer/")).text

    with ThreadPoolExecutor(1) as pool:  # its own event loop: Playwright's may run in this thread
        assert pool.submit(asyncio.run, get()).result() == "<p>v</p>"


def test_every_static_prefix_is_an_open_route_and_answers_anonymously(archive: YunyingServer) -> None:
    """Browsers load pages and modules without a token (the token goes with DICOMweb calls)."""
    from yunying.auth.policy import OPEN, RULES

    for prefix in STATIC_PREFIXES:
        rule = RULES.rule_for("GET", prefix + "/some/file.js")
        assert rule is not None and rule.action == OPEN, prefix
    with httpx.Client(base_url=archive.http_url) as anonymous:
        for path in ("/viewer/", "/viewer/main.js", "/common/i18n.js", "/i18n/en.json"):
            assert anonymous.get(path).status_code == 200, path
        assert anonymous.get("/dicomweb/studies").status_code == 401  # the data is not open


def test_pip_install_ships_every_front_end_file() -> None:
    """A page file whose type pyproject's package-data does not list would be missing once installed."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["frontends"]
    suffixes = {p.rsplit(".", 1)[1] for p in patterns}
    files = [f for f in (root / "frontends").rglob("*") if f.is_file() and f.suffix != ".py" and "__pycache__" not in f.parts]
    assert files and all(f.suffix.lstrip(".") in suffixes for f in files), [f.name for f in files]


def test_kept_files_follow_the_disk(tmp_path: Path) -> None:
    """Files are kept in memory once served: an edited file is served anew (new body, new ETag),
    a current ETag gets a 304, HEAD has no body but the GET's length."""
    import os

    (tmp_path / "viewer").mkdir()
    module = tmp_path / "viewer" / "a.js"
    module.write_text("export const a = 1;\n" * 200)
    app = Starlette()
    mount_frontends(app, tmp_path)

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            first = await c.get("/viewer/a.js")
            assert first.text == module.read_text() and first.headers["cache-control"] == "no-cache"
            assert "javascript" in first.headers["content-type"]
            head = await c.head("/viewer/a.js")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(first.content))
            again = await c.get("/viewer/a.js", headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304 and again.headers["cache-control"] == "no-cache"
            module.write_text("export const a = 2;\n" * 200)
            os.utime(module, ns=(1, 10**18))  # a new release's file: another mtime
            changed = await c.get("/viewer/a.js", headers={"If-None-Match": first.headers["etag"]})
            assert changed.status_code == 200 and changed.headers["etag"] != first.headers["etag"]
            assert changed.text.startswith("export const a = 2;")
            assert (await c.get("/viewer/b.js")).status_code == 404

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def test_the_archive_encodes_the_pages_files_as_the_browser_asks(archive: YunyingServer) -> None:
    with httpx.Client(base_url=archive.http_url) as c:
        for coding in ("br", "gzip", "zstd"):
            r = c.get("/viewer/main.js", headers={"Accept-Encoding": coding})
            assert r.status_code == 200 and r.headers["content-encoding"] == coding, coding
            assert "accept-encoding" in r.headers["vary"].lower()
        plain = c.get("/viewer/main.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.text.startswith("//")
        assert c.get("/viewer/main.js", headers={"If-None-Match": plain.headers["etag"],
                                                 "Accept-Encoding": "br"}).status_code == 304
