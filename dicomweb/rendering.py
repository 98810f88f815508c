"""Rendering frames of one instance (synchronous: always called through run_in_threadpool), and the byte cache."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np

from dicomweb.frames import display_frame, frame_info, render_header
from index.model import InstanceRow
from yunying.archive import Archive
from yunying.errors import NotAcceptable
from yunying.pixels import RenderParams, decode_preview, render
from yunying.pixels.codecs import CODEC_ERRORS
from yunying.pixels.frameinfo import UnsupportedTransfer

log = logging.getLogger("yunying.rendered")

_RENDER_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


class ByteLRU:
    """A thread-safe LRU of rendered bytes, bounded by total size (thumbnails, small renders)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: Hashable, data: bytes) -> None:
        if len(data) > self.max_bytes // 8:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._size += len(data) - (len(old) if old else 0)
            self._items[key] = data
            while self._size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


class ChosenRows:
    """The instance a series or study thumbnail shows, valid while the archive generation stands.

    A cached thumbnail then needs no index query (a series listing costs ~5 ms per 300 instances).
    """

    def __init__(self, size: int = 4096) -> None:
        self._items: OrderedDict[tuple[str, str | None], tuple[int, InstanceRow]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str | None], generation: int) -> InstanceRow | None:
        with self._lock:
            hit = self._items.get(key)
            return hit[1] if hit is not None and hit[0] == generation else None

    def put(self, key: tuple[str, str | None], generation: int, row: InstanceRow) -> None:
        with self._lock:
            self._items[key] = (generation, row)
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def params_key(params: RenderParams) -> str:
    """The render parameters as one string: part of cache keys and ETags."""
    return repr((params.window, params.viewport, params.quality, params.annotation))


def cache_key(row: InstanceRow, numbers: list[int], media: str, params: RenderParams) -> tuple[Any, ...]:
    """Keys start with the version digest: a replaced instance never hits."""
    return ("r", row.digest, tuple(numbers), media, params_key(params))


def render_frames(archive: Archive, cache: ByteLRU, row: InstanceRow, numbers: list[int], media: str,
                  params: RenderParams) -> bytes:
    """Frames of one instance rendered as one image (a GIF cine when several), cached by digest."""
    key = cache_key(row, numbers, media, params)
    if (hit := cache.get(key)) is not None:
        return hit
    arrays, photometric, header = [], None, None
    preview = _preview_side(archive, row, params, len(numbers))
    for n in numbers:
        if preview:
            arr, photometric, header = _preview(archive, row, n, preview)
        else:
            arr, photometric, header = display_frame(archive, row, n)
        arrays.append(arr)
    try:
        data = render(arrays, header, media_type=media, window=params.window, viewport=params.viewport,
                      quality=params.quality, frame_index=numbers[0] - 1, photometric=photometric,
                      annotation=params.annotation)
    except _RENDER_ERRORS as exc:
        log.info("rendering instance %s failed: %s", row.sop, type(exc).__name__)
        raise NotAcceptable(f"instance {row.sop} cannot be rendered ({type(exc).__name__})") from None
    cache.put(key, data)
    return data


def first_rendered(archive: Archive, cache: ByteLRU, jobs: list[tuple[InstanceRow, list[int]]], media: str,
                   params: RenderParams) -> tuple[bytes, int]:
    """The first part that renders (before the status line), and how many were skipped before it."""
    for i, (row, numbers) in enumerate(jobs):
        try:
            return render_frames(archive, cache, row, numbers, media, params), i
        except NotAcceptable:
            if i == len(jobs) - 1:
                raise
    raise NotAcceptable("nothing here can be rendered")


def _preview_side(archive: Archive, row: InstanceRow, params: RenderParams, count: int) -> int:
    """A long side to decode at when a small viewport of a bitstream allows a reduced decode."""
    if row.pixel_form != "encapsulated" or not params.viewport or count != 1:
        return 0
    info = frame_info(archive, row)
    side = max(params.viewport)
    return side if side * 2 <= max(info.rows, info.columns) else 0


def _preview(archive: Archive, row: InstanceRow, number: int, side: int) -> tuple[np.ndarray, None, Any]:
    """Issue 4 part 4: HTJ2K skips resolution levels; others decode and keep every n-th pixel."""
    header, info = render_header(archive, row), frame_info(archive, row)
    data = archive.read_frame(row, number)
    try:
        arr = decode_preview(bytes(data), info, row.transfer_syntax, max_side=side)  # type: ignore[arg-type]
    except (UnsupportedTransfer, *CODEC_ERRORS):
        return display_frame(archive, row, number)  # type: ignore[return-value]
    return arr, None, header  # photometric inferred from the header's transfer syntax
