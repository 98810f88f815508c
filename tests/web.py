"""HTTP from tests to the servers they started, carrying each server's API key (issue 11).

`web.get(url, ...)` is `httpx.get(url, ...)` plus `Authorization: Bearer <the key of the
server at that origin>` (benchmarks.net records the key of every server this process starts),
unless the request sets its own Authorization. Tests of refusals use httpx directly.
"""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

import httpx

from benchmarks.net import auth_headers


class ServerKey(httpx.Auth):
    """Adds the started server's key to a request that has no Authorization of its own."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "authorization" not in request.headers:
            request.headers.update(auth_headers(str(request.url)))
        yield request


KEY = ServerKey()


def request(method: str, url: str, **kw: Any) -> httpx.Response:
    kw.setdefault("auth", KEY)
    return httpx.request(method, url, **kw)


def get(url: str, **kw: Any) -> httpx.Response:
    return request("GET", url, **kw)


def head(url: str, **kw: Any) -> httpx.Response:
    return request("HEAD", url, **kw)


def options(url: str, **kw: Any) -> httpx.Response:
    return request("OPTIONS", url, **kw)


def post(url: str, **kw: Any) -> httpx.Response:
    return request("POST", url, **kw)


def put(url: str, **kw: Any) -> httpx.Response:
    return request("PUT", url, **kw)


def delete(url: str, **kw: Any) -> httpx.Response:
    return request("DELETE", url, **kw)


def stream(method: str, url: str, **kw: Any) -> Any:
    kw.setdefault("auth", KEY)
    return httpx.stream(method, url, **kw)


def Client(**kw: Any) -> httpx.Client:
    kw.setdefault("auth", KEY)
    return httpx.Client(**kw)


def AsyncClient(**kw: Any) -> httpx.AsyncClient:
    kw.setdefault("auth", KEY)
    return httpx.AsyncClient(**kw)
