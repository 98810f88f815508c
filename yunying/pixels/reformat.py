"""Server-side MPR and MIP/MinIP slabs from a series' frames (our extension, see docs in README)."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from yunying.pixels.geometry import Plane, SeriesGeometry, UnsuitableGeometry, plane_for
from yunying.pixels.lut import Window
from yunying.pixels.render import render

__all__ = ["FrameReader", "Plane", "SeriesGeometry", "UnsuitableGeometry", "UnsupportedMode",
           "plane_for", "reformat", "render_reformat"]

FrameReader = Callable[[int], np.ndarray]
Indices = tuple[np.ndarray, np.ndarray, np.ndarray]  # fractional (slice, row, column)
Combine = Callable[..., np.ndarray]


def reformat(read: FrameReader, geometry: SeriesGeometry, plane: Plane, *,
             thickness_mm: float = 0.0, mode: str = "mip") -> np.ndarray:
    """Stored values on the plane (float32), a slab combined by mip/minip/avg; reads only frames it needs."""
    if mode not in _COMBINE:
        raise UnsupportedMode(f"unknown slab mode {mode}")
    cols = (np.arange(plane.width) - (plane.width - 1) / 2) * plane.pixel_mm
    rows = (np.arange(plane.height) - (plane.height - 1) / 2) * plane.pixel_mm
    def grid(offset: float) -> Indices:
        return geometry.grid_to_index(plane.centre + plane.normal * offset, plane.u, plane.v,
                                      rows, cols)

    axis = _aligned_axis(geometry, plane.normal)
    if thickness_mm > 0 and axis is not None:
        out = _aligned_slab(read, geometry, grid(0.0), axis, thickness_mm, mode)
    else:
        step = min(float(np.min(np.diff(geometry.distances))), *geometry.spacing)
        count = 1 if thickness_mm <= 0 else math.ceil(thickness_mm / step) + 1
        offsets = np.linspace(-thickness_mm / 2, thickness_mm / 2, count) if count > 1 else [0.0]
        samples = [grid(float(o)) for o in offsets]
        values = _sample(read, geometry, samples)
        out = _COMBINE[mode](np.stack(values), axis=0) if len(values) > 1 else values[0]
    return out.reshape(plane.height, plane.width).astype(np.float32)


_COMBINE: dict[str, Combine] = {"mip": np.max, "minip": np.min, "avg": np.mean}


class UnsupportedMode(UnsuitableGeometry):
    """A slab mode we do not offer."""


def _aligned_axis(g: SeriesGeometry, normal: np.ndarray) -> int | None:
    """0 (slices), 1 (rows) or 2 (columns) when the plane is perpendicular to that volume axis."""
    for axis, direction in enumerate((g.normal, g.col_dir, g.row_dir)):
        if abs(float(normal @ direction)) > 0.9999:
            return axis
    return None


def _sample(read: FrameReader, g: SeriesGeometry, samples: list[Indices]) -> list[np.ndarray]:
    """Trilinear samples at each (k, r, c) set, reading and cropping only the frames they touch."""
    frames = _needed_frames(samples, len(g.positions))
    if not frames:
        return [np.zeros(samples[0][0].shape, np.float32) for _ in samples]
    r_all = np.concatenate([r for _, r, _ in samples])
    c_all = np.concatenate([c for _, _, c in samples])
    box = _box(r_all, c_all, g.rows, g.columns)
    # each crop copied as it is read: a view would keep its whole slice (the reader's memory map
    # pages) until the stack, i.e. a sagittal plane the whole series at once (issue 9 part 5)
    stack = np.stack([np.array(np.asarray(read(k))[box[0]:box[1], box[2]:box[3]]) for k in frames])
    slot = np.zeros(len(g.positions) + 1, np.int64)
    slot[frames] = np.arange(len(frames))
    background = float(stack.min())
    return [_trilinear(stack, slot, k, r, c, box, (g.rows, g.columns), background)
            for k, r, c in samples]


def _box(r: np.ndarray, c: np.ndarray, rows: int, cols: int) -> tuple[int, int, int, int]:
    """Row and column bounds (end exclusive) of the pixels that fractional (r, c) touch."""
    ok = (r >= 0) & (r <= rows - 1) & (c >= 0) & (c <= cols - 1)
    if not ok.any():
        return 0, 1, 0, 1
    r, c = r[ok], c[ok]
    return (int(np.floor(r.min())), min(int(np.floor(r.max())) + 2, rows),
            int(np.floor(c.min())), min(int(np.floor(c.max())) + 2, cols))


def _aligned_slab(read: FrameReader, g: SeriesGeometry, at_plane: Indices, axis: int,
                  thickness_mm: float, mode: str) -> np.ndarray:
    """A slab perpendicular to a volume axis: combine whole voxel planes, then sample once."""
    k, r, c = at_plane
    half = thickness_mm / 2
    if axis == 0:
        d = g.distances
        centre = float(np.nanmean(k)) if np.isfinite(k).any() else -1.0
        at = float(np.interp(centre, np.arange(len(d)), d))
        picks = [i for i in range(len(d)) if abs(d[i] - at) <= half + 1e-6]
        if not picks:
            return np.zeros(k.shape, np.float32)
        box = _box(r, c, g.rows, g.columns)
        planes = np.stack([np.array(np.asarray(read(i))[box[0]:box[1], box[2]:box[3]]) for i in picks])
        combined = _COMBINE[mode](planes, axis=0)[None]
        slot = np.zeros(len(d) + 1, np.int64)
        return _trilinear(combined, slot, np.zeros_like(k), r, c, box, (g.rows, g.columns),
                          float(combined.min()))
    coord = r if axis == 1 else c
    spacing = g.spacing[0] if axis == 1 else g.spacing[1]
    centre = float(np.nanmean(coord))
    lo = max(math.ceil(centre - half / spacing - 1e-6), 0)
    hi = min(math.floor(centre + half / spacing + 1e-6), (g.rows if axis == 1 else g.columns) - 1)
    frames = _needed_frames([(k, r, c)], len(g.positions))
    if not frames or hi < lo:
        return np.zeros(k.shape, np.float32)
    other = c if axis == 1 else r
    o_box = _box(np.zeros_like(other), other, 1, g.columns if axis == 1 else g.rows)[2:]
    pieces = []
    for i in frames:
        f = np.asarray(read(i))
        part = f[lo:hi + 1, o_box[0]:o_box[1]] if axis == 1 else f[o_box[0]:o_box[1], lo:hi + 1].T
        pieces.append(_COMBINE[mode](part, axis=0))
    combined = np.stack(pieces)[:, None, :]  # (frames, 1, other)
    slot = np.zeros(len(g.positions) + 1, np.int64)
    slot[frames] = np.arange(len(frames))
    flat_r = np.where(np.isnan(coord), np.nan, 0.0)
    box = (0, 1, o_box[0], o_box[1])
    return _trilinear(combined, slot, k, flat_r, other, box, (1, g.columns if axis == 1 else g.rows),
                      float(combined.min()))


def _needed_frames(samples: list[Indices], n: int) -> list[int]:
    """Slices that contribute with a non-zero weight to any sample."""
    needed: set[int] = set()
    for k, _, _ in samples:
        k = k[~np.isnan(k)]
        k0 = np.floor(k).astype(np.int64)
        needed.update(np.unique(k0).tolist())
        needed.update(np.unique(np.minimum(k0[(k - k0) > 1e-6] + 1, n - 1)).tolist())
    return sorted(i for i in needed if 0 <= i < n)


def _trilinear(stack: np.ndarray, slot: np.ndarray, k: np.ndarray, r: np.ndarray, c: np.ndarray,
               box: tuple[int, int, int, int], full: tuple[int, int], background: float) -> np.ndarray:
    """Trilinear interpolation at fractional (k, r, c) of a stack cropped to box; background outside."""
    rows, cols = full
    inside = ~np.isnan(k) & ~np.isnan(r) & (r >= 0) & (r <= rows - 1) & (c >= 0) & (c <= cols - 1)
    out = np.full(k.shape, background, np.float32)
    k, r, c = k[inside], r[inside] - box[0], c[inside] - box[2]
    _, srows, scols = stack.shape
    k0, r0, c0 = np.floor(k).astype(np.int64), np.floor(r).astype(np.int64), np.floor(c).astype(np.int64)
    dk, dr, dc = (k - k0).astype(np.float32), (r - r0).astype(np.float32), (c - c0).astype(np.float32)
    k1 = np.where(dk > 1e-6, k0 + 1, k0)
    r1, c1 = np.minimum(r0 + 1, srows - 1), np.minimum(c0 + 1, scols - 1)
    s0, s1 = slot[k0], slot[k1]
    flat = stack.reshape(-1)

    def at(s: np.ndarray, rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
        return flat[(s * srows + rr) * scols + cc].astype(np.float32)

    near = (at(s0, r0, c0) * (1 - dc) + at(s0, r0, c1) * dc) * (1 - dr) + \
        (at(s0, r1, c0) * (1 - dc) + at(s0, r1, c1) * dc) * dr
    far = (at(s1, r0, c0) * (1 - dc) + at(s1, r0, c1) * dc) * (1 - dr) + \
        (at(s1, r1, c0) * (1 - dc) + at(s1, r1, c1) * dc) * dr
    out[inside] = near * (1 - dk) + far * dk
    return out


def render_reformat(read: FrameReader, geometry: SeriesGeometry, header: Any, plane: Plane, *,
                    window: Window | None, thickness_mm: float = 0.0, mode: str = "mip",
                    media_type: str = "image/jpeg", quality: int | None = None) -> bytes:
    """A reformatted slice or slab rendered like a frame, with the series' rescale and window."""
    image = reformat(read, geometry, plane, thickness_mm=thickness_mm, mode=mode)
    display = Dataset()  # only what the greyscale pipeline needs: no overlays, no per-frame groups
    for keyword in ("PhotometricInterpretation", "RescaleSlope", "RescaleIntercept", "WindowCenter",
                    "WindowWidth", "VOILUTFunction", "PresentationLUTShape", "BitsStored"):
        if keyword in header:
            setattr(display, keyword, header.get(keyword))
    display.PixelSpacing = [plane.pixel_mm, plane.pixel_mm]
    return render([image], display, media_type=media_type, window=window, viewport=None,
                  quality=quality)
