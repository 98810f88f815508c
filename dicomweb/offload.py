"""The hot paths' blocking steps (a QIDO-RS search, a frame's read) on a thread pool of their own.

Starlette's `run_in_threadpool` goes through anyio: a capacity limiter, a cancel scope, the
async-library sniffing, a RunVar look-up. Measured on this machine (uvloop, a function that
returns at once): ~60 us of CPU and ~220 us of wall time per call, against ~35 us and ~95 us
through `loop.run_in_executor` on a plain executor. A QIDO-RS answer and a frame take exactly
one such hop, so the difference is a tenth of their server CPU (issue 11's cost target).
Context variables are carried over as anyio carries them. Rarer paths keep run_in_threadpool.
"""
from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
# threads start on demand and are reused; 16 keeps 8 clients' queries and reads in flight
POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="yunying-http")


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) in a pool thread, awaited without blocking the event loop."""
    ctx = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(POOL, ctx.run, fn, *args)
