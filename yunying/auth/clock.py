"""The one clock of the auth component: lockouts, password expiry, session timeouts, TOTP.

It is the wall clock, unless the environment names a clock file (`YUNYING_CLOCK_FILE`, for
tests only): that file holds a number of seconds added to the wall clock, so a test moves the
server's time forward (a 90-day expiry, a 30-minute idle timeout) without sleeping. The file is
read again only when it changed.
"""
from __future__ import annotations

import os
import time

_cache: tuple[float, float] = (-1.0, 0.0)  # (mtime, offset)


def _offset() -> float:
    global _cache
    path = os.environ.get("YUNYING_CLOCK_FILE")
    if not path:
        return 0.0
    try:
        mtime = os.stat(path).st_mtime
        if mtime != _cache[0]:
            with open(path, encoding="ascii") as f:
                _cache = (mtime, float(f.read().strip() or 0))
    except (OSError, ValueError):
        return 0.0
    return _cache[1]


def now() -> float:
    """Seconds since the epoch, as the auth component sees them."""
    return time.time() + _offset()


def seconds() -> int:
    return int(now())
