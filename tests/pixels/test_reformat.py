"""MPR/MIP geometry on a synthetic volume with known structures."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from yunying.pixels.reformat import (
    SeriesGeometry,
    UnsuitableGeometry,
    plane_for,
    reformat,
    render_reformat,
)

N, SIZE, DZ = 40, 64, 2.0  # 40 axial slices of 64x64, 1 mm pixels, 2 mm apart


def volume() -> np.ndarray:
    """Background 0; a z-line at (x=10, y=31); a sphere r=6 at (x=40, y=31, z=30); a dot at y=34."""
    vol = np.zeros((N, SIZE, SIZE), np.int16)
    vol[:, 31, 10] = 1000                                  # vol[k, row=y, col=x]
    z, y, x = np.mgrid[0:N, 0:SIZE, 0:SIZE]
    vol[(x - 40) ** 2 + (y - 31) ** 2 + (z * DZ - 30) ** 2 <= 36] = 500
    vol[20, 34, 50] = 2000                                 # 3 mm in front of the y=31 plane
    vol[20, 28, 55] = -500                                 # 3 mm behind it
    return vol


def headers(shuffle: bool = True) -> list[Dataset]:
    out = []
    for k in range(N):
        ds = Dataset()
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, k * DZ]
        ds.PixelSpacing = [1, 1]
        ds.Rows = ds.Columns = SIZE
        out.append(ds)
    if shuffle:
        out = out[::-1]  # order must come from positions, not from arrival
    return out


class Reader:
    """A frame accessor that records what it was asked for."""

    def __init__(self, vol: np.ndarray, order: list[int], reversed_: bool) -> None:
        self.vol, self.order, self.calls = vol, order, list[int]()
        self.reversed = reversed_

    def __call__(self, k: int) -> np.ndarray:
        self.calls.append(k)
        src = self.order[k]  # index into the shuffled header list
        return self.vol[N - 1 - src] if self.reversed else self.vol[src]


def setup() -> tuple[SeriesGeometry, Reader]:
    geometry, order = SeriesGeometry.from_headers(headers())
    return geometry, Reader(volume(), order, reversed_=True)


def test_axial_reads_one_frame_and_places_structures() -> None:
    geometry, read = setup()
    plane = plane_for(geometry, "axial", position_mm=30 - geometry.centre()[2])
    img = reformat(read, geometry, plane)
    assert read.calls == [15]  # z = 30 mm is slice 15 exactly
    assert img.shape == (SIZE, SIZE)
    assert img[31, 10] == 1000 and img[31, 40] == 500 and img[31, 47] == 0


def test_coronal_orientation_and_interpolation() -> None:
    geometry, read = setup()
    plane = plane_for(geometry, "coronal", position_mm=31 - geometry.centre()[1])
    img = reformat(read, geometry, plane)
    height = int((N - 1) * DZ) + 1
    assert img.shape == (height, SIZE)
    assert (img[:, 10] == 1000).all()              # the z-line is a full vertical line at x=10
    top_row = height - 1 - 30                       # head at top: z=30 mm -> row 48
    assert img[top_row, 40] == 500 and img[top_row, 33] == 0
    assert img[height - 1 - 31, 40] == 500          # z=31 mm: between slices, inside the sphere
    assert sorted(set(read.calls)) == list(range(N))


def test_sagittal_orientation() -> None:
    geometry, read = setup()
    plane = plane_for(geometry, "sagittal", position_mm=40 - geometry.centre()[0])
    img = reformat(read, geometry, plane)
    height = int((N - 1) * DZ) + 1
    assert img[height - 1 - 30, 31] == 500          # columns run anterior -> posterior (+y)
    assert img[height - 1 - 30, 20] == 0


def test_mip_and_minip_slabs() -> None:
    geometry, read = setup()
    plane = plane_for(geometry, "coronal", position_mm=31 - geometry.centre()[1])
    row = int((N - 1) * DZ) - 40                     # z = 40 mm (slice 20)
    thin = reformat(read, geometry, plane)
    assert thin[row, 50] == 0 and thin[row, 55] == 0
    mip = reformat(read, geometry, plane, thickness_mm=8, mode="mip")
    assert mip[row, 50] == 2000 and mip[row, 10] == 1000
    minip = reformat(read, geometry, plane, thickness_mm=8, mode="minip")
    assert minip[row, 55] == -500


def test_oblique_plane_through_the_line() -> None:
    geometry, read = setup()
    # a plane containing the z-line, rotated 45 degrees about it
    plane = plane_for(geometry, "oblique", u=[1, 1, 0], v=[0, 0, -1])
    shift = np.array([10, 31, 39]) - plane.centre
    plane = type(plane)(plane.centre + shift, plane.u, plane.v, 41, 41, 1.0)
    img = reformat(read, geometry, plane)
    assert (img[:, 20] == 1000).all()               # the line runs down the centre column
    assert (img[:, 18] < 1000).all()


def test_rendered_reformat_is_windowed_jpeg() -> None:
    geometry, read = setup()
    header = Dataset()
    header.PhotometricInterpretation = "MONOCHROME2"
    header.RescaleSlope, header.RescaleIntercept = 1, 0
    plane = plane_for(geometry, "coronal", size=(128, 128))
    data = render_reformat(read, geometry, header, plane, window=(500.0, 1000.0, "LINEAR"),
                           media_type="image/png")
    img = np.asarray(Image.open(io.BytesIO(data)))
    assert img.shape == (128, 128) and img.min() == 0
    assert img.max() >= 127  # the sphere (500) at the window centre, at least


def test_tilted_or_inconsistent_series_is_refused() -> None:
    tilted = headers(shuffle=False)
    for k, ds in enumerate(tilted):
        ds.ImagePositionPatient = [0, k * 0.5, k * DZ]  # gantry tilt: y shifts per slice
    with pytest.raises(UnsuitableGeometry, match="tilt"):
        SeriesGeometry.from_headers(tilted)
    twisted = headers(shuffle=False)
    twisted[3].ImageOrientationPatient = [0, 1, 0, 1, 0, 0]
    with pytest.raises(UnsuitableGeometry, match="parallel"):
        SeriesGeometry.from_headers(twisted)
    with pytest.raises(UnsuitableGeometry):
        SeriesGeometry.from_headers(headers()[:1])


def test_enhanced_multiframe_geometry() -> None:
    from pydicom.sequence import Sequence

    ds = Dataset()
    ds.Rows = ds.Columns = SIZE
    shared = Dataset()
    orient, measures = Dataset(), Dataset()
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing = [1, 1]
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    items = []
    for k in reversed(range(N)):
        item, pos = Dataset(), Dataset()
        pos.ImagePositionPatient = [0, 0, k * DZ]
        item.PlanePositionSequence = Sequence([pos])
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    geometry, order = SeriesGeometry.from_multiframe(ds)
    assert order[0] == N - 1 and geometry.distances[1] - geometry.distances[0] == DZ
