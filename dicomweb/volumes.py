"""Server-side reformats (our extension): a series as a lazily decoded volume, and MPR / MIP slices of it."""
from __future__ import annotations

import math
import mmap
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson

from dicomweb.frames import decode_for_display, header_info
from dicomweb.http import etag, number_param
from index.model import InstanceRow
from yunying.archive import Archive
from yunying.errors import InvalidQuery, NotAcceptable
from yunying.pixels import FrameInfo, RenderParams, parse_render_params
from yunying.pixels.geometry import SeriesGeometry, UnsuitableGeometry, plane_for
from yunying.pixels.reformat import render_reformat

REFORMAT_KEYS = frozenset({"window", "viewport", "quality", "orientation", "position", "thickness", "mode", "u",
                           "v"})
_GEOMETRIES_MAX = 32  # series whose geometry (and slices read so far) are kept


@dataclass(frozen=True)
class ReformatParams:
    """The reformat query, typed (README: Pixels: rendered, thumbnails, reformats)."""

    orientation: str
    position: float | None
    thickness: float
    mode: str
    u: tuple[float, float, float] | None
    v: tuple[float, float, float] | None
    render: RenderParams




def _vector(query: Mapping[str, str], name: str) -> tuple[float, float, float] | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        x, y, z = (float(t) for t in raw.split(","))
    except ValueError:
        raise InvalidQuery(name, "expected x,y,z (LPS direction)") from None
    if not all(math.isfinite(t) for t in (x, y, z)) or x * x + y * y + z * z < 1e-12:
        raise InvalidQuery(name, "must be a finite, non-zero direction")
    return x, y, z


def parse_reformat(query: Mapping[str, str]) -> ReformatParams:
    """orientation, position (mm), thickness (mm), mode, u, v (oblique) + window/viewport/quality."""
    orientation = (query.get("orientation") or "axial").lower()
    if orientation not in ("axial", "coronal", "sagittal", "oblique"):
        raise InvalidQuery("orientation", "axial, coronal, sagittal or oblique")
    mode = (query.get("mode") or "mip").lower()
    if mode not in ("mip", "minip", "avg"):
        raise InvalidQuery("mode", "mip, minip or avg")
    u, v = _vector(query, "u"), _vector(query, "v")
    if orientation == "oblique" and (u is None or v is None):
        raise InvalidQuery("u" if u is None else "v", "an oblique plane needs both u and v")
    if u is not None and v is not None and abs(np.cross(u, v)).max() < 1e-6:
        raise InvalidQuery("v", "must not be parallel to u")
    render_params = parse_render_params(query)
    if render_params.viewport and max(render_params.viewport) > 2048:
        raise InvalidQuery("viewport", "a reformat is at most 2048 pixels on a side")
    return ReformatParams(orientation, number_param(query, "position", -10000, 10000),
                          number_param(query, "thickness", 0, 1000) or 0.0, mode, u, v, render_params)


class Volume:
    """A series as a stack: geometry, where each slice is stored, and slices read so far (lazily).

    Decoded slices live in an unlinked temporary file, read through a memory map, not in the
    heap: a reformat crops each slice (a coronal plane reads one row of each), so it maps only
    the pages it touches, and between requests the decoded series (157 MiB for 300 CT slices)
    is in the kernel's page cache, which it can reclaim, not in the server's memory (issue 9
    part 5: kept in the heap it was the largest part of the server's idle and peak memory).
    """

    def __init__(self, geometry: SeriesGeometry, frames: list[tuple[InstanceRow, int]], header: Any,
                 info: FrameInfo) -> None:
        self.geometry = geometry
        self.frames = frames          # (instance, frame number) in geometry order
        self.header = header          # the middle slice's header: rescale and window
        self.info = info              # every slice has the middle one's pixel module: no 300 header reads
        self.decoded = [False] * len(frames)
        self.dtype: np.dtype[Any] | None = None  # of the first slice decoded; the others follow it
        self.nbytes = 0
        self.lock = threading.Lock()
        self._file = tempfile.TemporaryFile(prefix="yunying-volume-")  # noqa: SIM115 - lives as long as the volume
        self._map: mmap.mmap | None = None
        self._last: int | None = None  # the slice read last: its pages go at the next read

    def slice(self, archive: Archive, k: int) -> np.ndarray:
        """Slice k, decoded once: a coronal plane after the first touches the page cache, not 300 chunks."""
        if not self.decoded[k]:
            row, number = self.frames[k]
            arr = decode_for_display(archive.read_frame(row, number), self.info, row)[0]
            if arr.shape != (self.geometry.rows, self.geometry.columns):
                raise UnsuitableGeometry("slices differ in size")
            with self.lock:
                if self.dtype is None:
                    self.dtype = arr.dtype
                    self._file.truncate(len(self.frames) * arr.nbytes)
                if not self.decoded[k]:
                    data = np.ascontiguousarray(arr, self.dtype)
                    os.pwrite(self._file.fileno(), data.tobytes(), k * data.nbytes)
                    self.decoded[k] = True
                    self.nbytes += data.nbytes
        with self.lock:
            if self._map is None:
                assert self.dtype is not None
                self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            stack = np.frombuffer(self._map, self.dtype).reshape(
                len(self.frames), self.geometry.rows, self.geometry.columns)
            if self._last is not None:  # its crop is copied by now (yunying.pixels.reformat)
                self._unmap_pages(self._last)
            self._last = k
        return stack[k]

    def _unmap_pages(self, k: int | None = None) -> None:
        """Drop slice k's pages (all when None) from this process's page tables: they stay in
        the page cache, and a read maps them again (no I/O). Safe for any view still held."""
        if self._map is None or not hasattr(self._map, "madvise"):
            return
        size = self.geometry.rows * self.geometry.columns * (self.dtype.itemsize if self.dtype else 0)
        start, length = (0, len(self._map)) if k is None else (k * size, size)
        aligned = start - start % mmap.PAGESIZE
        self._map.madvise(mmap.MADV_DONTNEED, aligned, min(length + start - aligned, len(self._map) - aligned))

    def release(self) -> None:
        """After a request: none of the volume's pages count as this process's memory."""
        with self.lock:
            self._unmap_pages()
            self._last = None


def _plane_view(doc: dict[str, Any]) -> SimpleNamespace:
    """The Image Plane attributes of one instance from its stored DICOM JSON (no header read)."""
    def value(tag: str) -> Any:
        return (doc.get(tag) or {}).get("Value")

    def one(tag: str) -> Any:
        v = value(tag)
        return v[0] if v else None
    return SimpleNamespace(ImageOrientationPatient=value("00200037"), ImagePositionPatient=value("00200032"),
                           PixelSpacing=value("00280030"), Rows=one("00280010"), Columns=one("00280011"),
                           SamplesPerPixel=one("00280002") or 1, SOPInstanceUID=one("00080018"))


def image_rows(rows: list[InstanceRow]) -> list[InstanceRow]:
    """The instances that have pixels; 406 when none does."""
    images = [r for r in rows if r.pixel_form != "none" and r.frames > 0]
    if not images:
        raise NotAcceptable("no image instances here: nothing to render")
    return images


def _build(archive: Archive, study: str, series: str, rows: list[InstanceRow]) -> Volume:
    if len(rows) == 1 and rows[0].frames > 1:  # an enhanced multi-frame instance (PS3.3 C.7.6.16)
        header, info = header_info(archive, rows[0])
        if info.samples_per_pixel != 1:
            raise UnsuitableGeometry("reformats are for greyscale images")
        geometry, order = SeriesGeometry.from_multiframe(header)
        frames = [(rows[0], k + 1) for k in order]
    else:
        by_sop = {r.sop: r for r in rows}
        views = []
        for batch in archive.iter_metadata(study, series):  # stored JSON: 300 slices, no header reads
            for raw in batch:
                view = _plane_view(orjson.loads(raw))
                if view.SOPInstanceUID in by_sop:
                    views.append(view)
        if any(int(v.SamplesPerPixel) != 1 for v in views):
            raise UnsuitableGeometry("reformats are for greyscale images")
        geometry, order = SeriesGeometry.from_headers(views)
        frames = [(by_sop[views[k].SOPInstanceUID], 1) for k in order]
        header, info = header_info(archive, frames[len(frames) // 2][0])
    return Volume(geometry, frames, header, info)


class Volumes:
    """Series volumes by version (the digests of their instances), least recently used dropped first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes    # decoded slices kept, all series together
        self._items: OrderedDict[str, Volume] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, archive: Archive, study: str, series: str, rows: list[InstanceRow]) -> Volume:
        """The series' volume, built from stored JSON on first use (geometry only; slices come lazily)."""
        rows = image_rows(rows)
        key = etag(r.digest for r in rows)
        with self._lock:
            if (hit := self._items.get(key)) is not None:
                self._items.move_to_end(key)
                return hit
        volume = _build(archive, study, series, rows)
        with self._lock:
            self._items[key] = volume
            while len(self._items) > _GEOMETRIES_MAX:
                self._items.popitem(last=False)
        return volume

    def trim(self) -> None:
        """Drop least recently used volumes beyond max_bytes (the newest stays: it is in use)."""
        with self._lock:
            while len(self._items) > 1 and sum(v.nbytes for v in self._items.values()) > self.max_bytes:
                self._items.popitem(last=False)

    def render(self, archive: Archive, study: str, series: str, rows: list[InstanceRow],
               q: ReformatParams, media: str) -> bytes:
        """One MPR slice or MIP/MinIP/average slab, reading only the frames it touches (once per series)."""
        volume = self.get(archive, study, series, rows)
        plane = plane_for(volume.geometry, q.orientation, position_mm=q.position, size=q.render.viewport,
                          u=q.u, v=q.v)
        try:
            return render_reformat(partial(volume.slice, archive), volume.geometry, volume.header, plane,
                                   window=q.render.window, thickness_mm=q.thickness, mode=q.mode,
                                   media_type=media, quality=q.render.quality)
        finally:
            volume.release()
            self.trim()
