"""The HTTP app's start (issue 11's cost target): the heap built at start-up is frozen out of
the cyclic collector, so a full collection no longer walks it on a request's time."""
from __future__ import annotations

import asyncio
import gc

from dicomweb.app import lifespan


def test_the_startup_heap_is_frozen_while_the_server_runs() -> None:
    gc.unfreeze()
    kept = [[i] for i in range(1000)]  # long-lived containers, as the index catalog holds

    async def start() -> int:
        async with lifespan(None):  # type: ignore[arg-type]  # the app is not used
            return gc.get_freeze_count()
    try:
        frozen = asyncio.run(start())
        assert frozen >= len(kept)
        walked = {id(o) for o in gc.get_objects(generation=2)}  # what a full collection walks
        assert not any(id(x) in walked for x in kept)
    finally:
        gc.unfreeze()
