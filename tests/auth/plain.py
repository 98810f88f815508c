"""httpx calls with no credentials of their own and a timeout fit for a loaded 2-core machine
(argon2 hashing runs on every login: httpx's 5 s default was seen to run out)."""
from __future__ import annotations

from tests.web import Calls

TIMEOUT = 60.0
_plain = Calls(timeout=TIMEOUT)
request, get, post, delete, options = _plain.request, _plain.get, _plain.post, _plain.delete, _plain.options
