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


class Calls:
    """httpx's one-shot calls with default keyword arguments (a call's own arguments win)."""

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, url, **(self.defaults | kw))

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def head(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("HEAD", url, **kw)

    def options(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("OPTIONS", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", url, **kw)

    def delete(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", url, **kw)


_keyed = Calls(auth=KEY)
request, get, head, options = _keyed.request, _keyed.get, _keyed.head, _keyed.options
post, put, delete = _keyed.post, _keyed.put, _keyed.delete


def stream(method: str, url: str, **kw: Any) -> Any:
    kw.setdefault("auth", KEY)
    return httpx.stream(method, url, **kw)


def Client(**kw: Any) -> httpx.Client:
    kw.setdefault("auth", KEY)
    return httpx.Client(**kw)


def AsyncClient(**kw: Any) -> httpx.AsyncClient:
    kw.setdefault("auth", KEY)
    return httpx.AsyncClient(**kw)
