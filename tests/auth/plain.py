"""httpx calls with no credentials of their own and a timeout fit for a loaded 2-core machine
(argon2 hashing runs on every login: httpx's 5 s default was seen to run out)."""
from __future__ import annotations

from typing import Any

import httpx

TIMEOUT = 60.0


def request(method: str, url: str, **kw: Any) -> httpx.Response:
    kw.setdefault("timeout", TIMEOUT)
    return httpx.request(method, url, **kw)


def get(url: str, **kw: Any) -> httpx.Response:
    return request("GET", url, **kw)


def post(url: str, **kw: Any) -> httpx.Response:
    return request("POST", url, **kw)


def delete(url: str, **kw: Any) -> httpx.Response:
    return request("DELETE", url, **kw)


def options(url: str, **kw: Any) -> httpx.Response:
    return request("OPTIONS", url, **kw)
