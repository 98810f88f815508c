"""Series geometry and output planes for reformats (PS3.3 C.7.6.2.1.1 Image Plane module, LPS mm)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from yunying.errors import ArchiveError


class UnsuitableGeometry(ArchiveError):
    """The series cannot be reformatted: tilted, inconsistent or single-slice geometry."""

    http_status, dimse_status = 400, 0xC000


@dataclass(frozen=True)
class _FrameView:
    """The plane attributes of one frame of a multi-frame instance, shaped like a header."""

    ImageOrientationPatient: Any
    ImagePositionPatient: Any
    PixelSpacing: Any
    Rows: Any
    Columns: Any


@dataclass(frozen=True)
class SeriesGeometry:
    """A stack of parallel slices: frame k's top-left pixel at positions[k] (LPS mm, PS3.3 C.7.6.2.1.1)."""

    positions: np.ndarray     # (n, 3), in frame order along the normal
    row_dir: np.ndarray       # direction of increasing column index (IOP values 1-3)
    col_dir: np.ndarray       # direction of increasing row index (IOP values 4-6)
    spacing: tuple[float, float]  # PixelSpacing: between rows, between columns
    rows: int
    columns: int

    @classmethod
    def from_headers(cls, headers: Sequence[Any]) -> tuple[SeriesGeometry, list[int]]:
        """Geometry of single-frame instances, and their order along the normal (indices into headers)."""
        if len(headers) < 2:
            raise UnsuitableGeometry("a reformat needs at least two slices")
        try:
            iop = np.array([[float(v) for v in h.ImageOrientationPatient] for h in headers])
            ipp = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
            spacing = tuple(float(v) for v in headers[0].PixelSpacing)
            rows, cols = int(headers[0].Rows), int(headers[0].Columns)
        except (AttributeError, TypeError, ValueError) as exc:
            raise UnsuitableGeometry(f"missing or malformed plane geometry: {exc}") from exc
        if np.abs(iop - iop[0]).max() > 1e-3:
            raise UnsuitableGeometry("slices are not parallel (ImageOrientationPatient differs)")
        if any((int(h.Rows), int(h.Columns)) != (rows, cols) for h in headers):
            raise UnsuitableGeometry("slices differ in size")
        order = [int(i) for i in np.argsort(ipp @ np.cross(iop[0, :3], iop[0, 3:]))]
        geometry = cls(ipp[order], iop[0, :3], iop[0, 3:], (spacing[0], spacing[1]), rows, cols)
        geometry.check()
        return geometry, order

    @classmethod
    def from_multiframe(cls, ds: Any) -> tuple[SeriesGeometry, list[int]]:
        """Geometry of an enhanced multi-frame instance (PS3.3 C.7.6.16: Plane Position/Orientation)."""
        per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
        shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]

        def group(item: Any, seq: str, keyword: str) -> Any:
            for source in (item, shared):
                inner = source.get(seq) if source is not None else None
                if inner and keyword in inner[0]:
                    return inner[0].get(keyword)
            return ds.get(keyword)

        frames = []
        for item in per_frame:
            view = _FrameView(
                group(item, "PlaneOrientationSequence", "ImageOrientationPatient"),
                group(item, "PlanePositionSequence", "ImagePositionPatient"),
                group(item, "PixelMeasuresSequence", "PixelSpacing"), ds.get("Rows"), ds.get("Columns"))
            frames.append(view)
        return cls.from_headers(frames)

    @property
    def normal(self) -> np.ndarray:
        """Unit normal of the slices (row direction x column direction)."""
        n = np.cross(self.row_dir, self.col_dir)
        return n / np.linalg.norm(n)

    @property
    def distances(self) -> np.ndarray:
        """Each slice's position along the normal, mm, increasing."""
        return self.positions @ self.normal

    def check(self) -> None:
        """Refuse stacks we would misplace: duplicates, or slices off the normal line (gantry tilt)."""
        d = self.distances
        if np.any(np.diff(d) <= 1e-4):
            raise UnsuitableGeometry("two slices at the same position")
        inplane = self.positions - np.outer(d - d[0], self.normal) - self.positions[0]
        if np.abs(inplane).max() > 0.05 * max(self.spacing) + 1e-3:
            raise UnsuitableGeometry("slices are sheared (gantry tilt); not supported")

    def to_index(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Patient points (m, 3) -> fractional (slice, row, column) indices; NaN slice when outside."""
        rel = points - self.positions[0]
        col = rel @ self.row_dir / self.spacing[1]
        row = rel @ self.col_dir / self.spacing[0]
        d = self.distances
        k = np.interp(rel @ self.normal + d[0], d, np.arange(len(d)), left=np.nan, right=np.nan)
        return k, row, col

    def grid_to_index(self, centre: np.ndarray, u: np.ndarray, v: np.ndarray, down_mm: np.ndarray,
                      across_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """to_index for the grid centre + down*v + across*u, computed separably (flattened)."""
        rel = centre - self.positions[0]

        def project(direction: np.ndarray, scale: float) -> np.ndarray:
            d = direction / scale
            return (rel @ d + down_mm[:, None] * (v @ d) + across_mm[None, :] * (u @ d)).ravel()

        col = project(self.row_dir, self.spacing[1])
        row = project(self.col_dir, self.spacing[0])
        dist = project(self.normal, 1.0) + self.distances[0]
        d = self.distances
        k = np.interp(dist, d, np.arange(len(d), dtype=np.float64), left=np.nan, right=np.nan)
        return k, row, col

    def centre(self) -> np.ndarray:
        """Centre of the volume, LPS mm."""
        mid = (self.positions[0] + self.positions[-1]) / 2
        return mid + self.row_dir * self.spacing[1] * (self.columns - 1) / 2 + \
            self.col_dir * self.spacing[0] * (self.rows - 1) / 2


@dataclass(frozen=True)
class Plane:
    """An output image: centre (LPS mm), unit vectors along its columns (u) and rows (v), size, pixel mm."""

    centre: np.ndarray
    u: np.ndarray
    v: np.ndarray
    width: int
    height: int
    pixel_mm: float

    @property
    def normal(self) -> np.ndarray:
        """Unit normal of the plane."""
        n = np.cross(self.u, self.v)
        return n / np.linalg.norm(n)


# Display conventions (LPS): patient right on image left, head at top, anterior on the left
_AXES = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
}


def plane_for(geometry: SeriesGeometry, orientation: str, *, position_mm: float | None = None,
              size: tuple[int, int] | None = None, u: Sequence[float] | None = None,
              v: Sequence[float] | None = None) -> Plane:
    """An axial/coronal/sagittal (or oblique, given u and v) plane through the volume.

    position_mm is the plane's offset from the volume centre along its normal, oriented towards
    +x (left), +y (posterior) or +z (head) as the normal mostly points.
    """
    if orientation == "oblique":
        if u is None or v is None:
            raise UnsuitableGeometry("an oblique plane needs both u and v directions")
        uu, vv = np.asarray(u, float), np.asarray(v, float)
        vv = vv - uu * (uu @ vv) / (uu @ uu)  # make v orthogonal to u
    elif orientation in _AXES:
        uu, vv = (np.asarray(a, float) for a in _AXES[orientation])
    else:
        raise UnsuitableGeometry(f"unknown orientation {orientation}")
    uu, vv = uu / np.linalg.norm(uu), vv / np.linalg.norm(vv)
    pixel = min(geometry.spacing)
    extent = _extent(geometry)
    width = size[0] if size else max(1, round(float(np.ptp(extent @ uu)) / pixel) + 1)
    height = size[1] if size else max(1, round(float(np.ptp(extent @ vv)) / pixel) + 1)
    if size:  # fit the whole volume section into the requested size
        pixel = max(float(np.ptp(extent @ uu)) / max(width - 1, 1),
                    float(np.ptp(extent @ vv)) / max(height - 1, 1), 1e-6)
    centre = geometry.centre()
    n = np.cross(uu, vv)
    n = n * np.sign(n[np.argmax(np.abs(n))])  # offsets run along +x, +y or +z (LPS)
    if position_mm is not None:
        centre = centre + n * float(position_mm)
    return Plane(centre, uu, vv, int(width), int(height), pixel)


def _extent(g: SeriesGeometry) -> np.ndarray:
    """The 8 corners of the volume, LPS mm."""
    a = g.row_dir * g.spacing[1] * (g.columns - 1)
    b = g.col_dir * g.spacing[0] * (g.rows - 1)
    return np.array([p + x + y for p in (g.positions[0], g.positions[-1])
                     for x in (0 * a, a) for y in (0 * b, b)])


