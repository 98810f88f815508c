"""Rendered resources, thumbnails and reformats (PS3.18 10.4.1.1.3-4, 8.3.5; reformat is our extension).

Tolerances: PNG answers are compared with a numpy reference windowing of pydicom's decode to
within 1 grey level (rounding); JPEG answers (quality 100 unless stated) to a mean absolute
difference below 2 grey levels.
"""
from __future__ import annotations

import io

import httpx
import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.pixels import apply_color_lut
from pydicom.uid import generate_uid

from benchmarks.net import YunyingServer
from tests import web
from tests.dicomweb.helpers import make_ct
from tests.dicomweb.test_frames_media import fresh
from tests.dicomweb.test_wado import parts, stow, url

PNG, JPEG, GIF = {"Accept": "image/png"}, {"Accept": "image/jpeg"}, {"Accept": "image/gif"}


def image(resp: httpx.Response) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    return np.asarray(Image.open(io.BytesIO(resp.content)))


def frames(img: Image.Image) -> int:
    return int(getattr(img, "n_frames", 1))


def reference(ds: pydicom.Dataset, centre: float, width: float, frame: int | None = None) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR window of the rescaled values, MONOCHROME1 inverted, as uint8."""
    arr = ds.pixel_array if frame is None else ds.pixel_array[frame]
    x = arr.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    y = np.clip((x - (centre - 0.5)) / (width - 1) + 0.5, 0, 1)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        y = 1 - y
    return np.rint(y * 255).astype(np.uint8)


def close(got: np.ndarray, want: np.ndarray, tol: int = 1) -> None:
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() <= tol


@pytest.fixture(scope="module")
def ct(server: YunyingServer) -> pydicom.Dataset:
    ds = fresh("CT_small.dcm")  # signed 16-bit, rescaled
    stow(server, ds)
    return ds


def test_signed_ct_png_matches_reference_window(server: YunyingServer, ct: pydicom.Dataset) -> None:
    close(image(web.get(url(server, ct, "/rendered"), params={"window": "40,400"}, headers=PNG)),
          reference(ct, 40, 400))
    close(image(web.get(url(server, ct, "/frames/1/rendered"), params={"window": "1000,3000"}, headers=PNG)),
          reference(ct, 1000, 3000))


def test_jpeg_is_the_default_and_close(server: YunyingServer, ct: pydicom.Dataset) -> None:
    resp = web.get(url(server, ct, "/rendered"), params={"window": "40,400", "quality": "100"})
    assert resp.headers["content-type"] == "image/jpeg"
    got = image(resp)
    assert np.abs(got.astype(int) - reference(ct, 40, 400)).mean() < 2
    low = web.get(url(server, ct, "/rendered"), params={"window": "40,400", "quality": "10"})
    assert len(low.content) < len(resp.content)


def test_monochrome1_is_inverted(server: YunyingServer) -> None:
    ds = fresh("MR_small.dcm")
    ds.PhotometricInterpretation = "MONOCHROME1"
    stow(server, ds)
    close(image(web.get(url(server, ds, "/rendered"), params={"window": "600,1200"}, headers=PNG)),
          reference(ds, 600, 1200))
    ds.PhotometricInterpretation = "MONOCHROME2"
    m2 = reference(ds, 600, 1200)
    assert (image(web.get(url(server, ds, "/rendered"), params={"window": "600,1200"}, headers=PNG))
            .astype(int) + m2).mean() == pytest.approx(255, abs=1)


def test_one_frame_in_two_windows_then_replaced(server: YunyingServer) -> None:
    """Window tables are keyed by window and rescale, rendered bytes by instance version."""
    ds = fresh("CT_small.dcm")
    stow(server, ds)
    for centre, width in ((40, 400), (1000, 3000), (40, 400)):
        got = image(web.get(url(server, ds, "/frames/1/rendered"), params={"window": f"{centre},{width}"},
                              headers=PNG))
        close(got, reference(ds, centre, width))
    ds.RescaleIntercept = str(float(ds.RescaleIntercept) + 500)  # a new version under the same UIDs
    stow(server, ds)
    close(image(web.get(url(server, ds, "/frames/1/rendered"), params={"window": "40,400"}, headers=PNG)),
          reference(ds, 40, 400))


def test_every_slice_of_a_series_one_by_one(server: YunyingServer) -> None:
    """The second slice asked for loads the series' rows at once; every slice is still its own."""
    study, series = generate_uid(), generate_uid()
    slices = [make_ct(study, series, number=k, rows=16, cols=16) for k in range(1, 6)]
    for ds in slices:
        ds.RescaleSlope, ds.RescaleIntercept = "1", str(-100 * ds.InstanceNumber)
    stow(server, *slices)
    for ds in slices:
        close(image(web.get(url(server, ds, "/frames/1/rendered"), params={"window": "1000,3000"},
                              headers=PNG)), reference(ds, 1000, 3000))


def test_overlay_still_burnt_in(server: YunyingServer) -> None:
    """An image with an overlay plane is rendered from its parsed header, overlay and all."""
    ds = fresh("examples_overlay.dcm")
    stow(server, ds)
    overlay = ds.overlay_array(0x6000).astype(bool)
    got = image(web.get(url(server, ds, "/rendered"), headers=PNG))
    r0, c0 = (int(v) - 1 for v in ds[0x6000, 0x0050].value)
    region = got[r0:r0 + overlay.shape[0], c0:c0 + overlay.shape[1]]
    assert overlay.any() and (region[overlay[:region.shape[0], :region.shape[1]]] == 255).all()


def test_palette_colour(server: YunyingServer) -> None:
    ds = fresh("examples_palette.dcm")
    stow(server, ds)
    want = apply_color_lut(ds.pixel_array, ds)
    want = (want >> 8).astype(np.uint8) if want.dtype != np.uint8 else want
    close(image(web.get(url(server, ds, "/rendered"), headers=PNG)), want)


@pytest.mark.parametrize("name", ["SC_ybr_full_422_uncompressed.dcm", "SC_rgb_jpeg_dcmtk.dcm",
                                  "examples_rgb_color.dcm"])
def test_ybr_and_rgb_become_rgb(server: YunyingServer, name: str) -> None:
    ds = fresh(name)
    stow(server, ds)
    got = image(web.get(url(server, ds, "/rendered"), headers=PNG))
    want = ds.pixel_array  # pydicom converts YBR to RGB by default
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 2  # colour conversion rounding


def test_multiframe_gif_cine_and_frames(server: YunyingServer) -> None:
    ds = fresh("examples_ybr_color.dcm")  # 30 frames, JPEG baseline YBR_FULL_422
    stow(server, ds)
    gif = web.get(url(server, ds, "/rendered"), headers=GIF)
    assert gif.headers["content-type"] == "image/gif"
    img = Image.open(io.BytesIO(gif.content))
    durations = []
    for i in range(frames(img)):  # Pillow merges identical neighbours, adding their durations
        img.seek(i)
        durations.append(img.info["duration"])
    frame_ms = max(20, round(float(ds.get("FrameTime", 33.3))))
    assert sum(durations) == pytest.approx(30 * frame_ms, rel=0.15)  # GIF keeps centiseconds
    assert frames(img) > 20
    single = image(web.get(url(server, ds, "/frames/2/rendered"), params={"quality": "100"}, headers=JPEG))
    assert np.abs(single.astype(int) - ds.pixel_array[1].astype(int)).mean() < 3
    first = image(web.get(url(server, ds, "/rendered"), params={"quality": "100"}, headers=JPEG))
    assert np.abs(first.astype(int) - ds.pixel_array[0].astype(int)).mean() < 3
    several = parts(web.get(url(server, ds, "/frames/3,1/rendered"),
                              headers={"Accept": 'multipart/related; type="image/png"'}))
    assert [c for c, _ in several] == ["image/png", "image/png"]
    got = np.asarray(Image.open(io.BytesIO(several[0][1])))
    assert np.abs(got.astype(int) - ds.pixel_array[2].astype(int)).mean() < 3
    cine = Image.open(io.BytesIO(web.get(url(server, ds, "/frames/1,2,3/rendered"), headers=GIF).content))
    assert frames(cine) == 3


def test_viewport_keeps_the_physical_aspect(server: YunyingServer) -> None:
    ds = make_ct(rows=64, cols=64)
    ds.PixelSpacing = [2.0, 1.0]  # rows 2 mm apart: the image is twice as tall as wide
    stow(server, ds)
    img = Image.open(io.BytesIO(web.get(url(server, ds, "/rendered"), params={"viewport": "256,256"}).content))
    assert img.size == (128, 256)
    wide = fresh("JPEG2000.dcm")  # 1024 rows x 256 columns
    stow(server, wide)
    img = Image.open(io.BytesIO(web.get(url(server, wide, "/rendered"), params={"viewport": "100,100"}).content))
    assert img.size == (25, 100)


@pytest.mark.parametrize("key,value", [("window", "abc"), ("window", "40"), ("window", "40,-1"),
                                       ("viewport", "0,10"), ("viewport", "a,b"), ("quality", "101"),
                                       ("quality", "x"), ("annotation", "everything")])
def test_bad_parameters_are_400_naming_the_parameter(server: YunyingServer, ct: pydicom.Dataset, key: str,
                                                     value: str) -> None:
    for tail in ("/rendered", "/thumbnail", "/frames/1/rendered"):
        resp = web.get(url(server, ct, tail), params={key: value})
        assert resp.status_code == 400, (tail, key, value)
        assert resp.json()["error"].startswith(key)


def test_unacceptable_media_is_406_and_unknown_keys_warn(server: YunyingServer, ct: pydicom.Dataset) -> None:
    for accept in ("application/dicom", "text/html", "image/jp2", "video/mp4"):
        resp = web.get(url(server, ct, "/rendered"), headers={"Accept": accept})
        assert resp.status_code == 406, accept
        assert resp.json()["error"]
    resp = web.get(url(server, ct, "/rendered"), params={"nosuch": "1"})
    assert resp.status_code == 200
    assert resp.headers["warning"].startswith("299 ")
    assert web.get(url(server, ct, "/frames/2/rendered")).status_code == 404


def test_annotation_only_on_request(server: YunyingServer, ct: pydicom.Dataset) -> None:
    plain = image(web.get(url(server, ct, "/rendered"), params={"window": "40,400"}, headers=PNG))
    noted = image(web.get(url(server, ct, "/rendered"), params={"window": "40,400", "annotation": "technique"},
                            headers=PNG))
    close(plain, reference(ct, 40, 400))
    assert not np.array_equal(plain, noted if noted.ndim == 2 else noted[..., 0])


@pytest.fixture(scope="module")
def series3(server: YunyingServer) -> list[pydicom.Dataset]:
    study, series = generate_uid(), generate_uid()
    datasets = [make_ct(study, series, number=i + 1, rows=32, cols=32) for i in range(3)]
    stow(server, *datasets)
    return datasets


def test_series_and_study_rendered(server: YunyingServer, series3: list[pydicom.Dataset]) -> None:
    first = series3[0]
    base = f"{server.dicomweb_url}/studies/{first.StudyInstanceUID}"
    for target in (base + f"/series/{first.SeriesInstanceUID}/rendered", base + "/rendered"):
        got = parts(web.get(target, params={"window": "2048,4096"},
                              headers={"Accept": 'multipart/related; type="image/png"'}))
        assert len(got) == 3
        for (ctype, data), ds in zip(got, series3):
            assert ctype == "image/png"
            close(np.asarray(Image.open(io.BytesIO(data))), reference(ds, 2048, 4096))
        one = image(web.get(target, params={"window": "2048,4096"}, headers=PNG))
        close(one, reference(first, 2048, 4096))  # single part: the first instance
    client = DICOMwebClient(server.dicomweb_url, headers=server.headers)
    data = client.retrieve_series_rendered(first.StudyInstanceUID, first.SeriesInstanceUID,
                                           media_types=("image/png",), params={"window": "2048,4096"})
    close(np.asarray(Image.open(io.BytesIO(data))), reference(first, 2048, 4096))
    data = client.retrieve_instance_frames_rendered(first.StudyInstanceUID, first.SeriesInstanceUID,
                                                    first.SOPInstanceUID, [1], media_types=("image/png",),
                                                    params={"window": "2048,4096"})
    close(np.asarray(Image.open(io.BytesIO(data))), reference(first, 2048, 4096))


def test_thumbnails_at_every_level_small_and_cached(server: YunyingServer, series3: list[pydicom.Dataset]) -> None:
    first, middle = series3[0], series3[1]
    study = f"{server.dicomweb_url}/studies/{first.StudyInstanceUID}"
    series = f"{study}/series/{first.SeriesInstanceUID}"
    targets = {study + "/thumbnail": middle, series + "/thumbnail": middle,
               url(server, first, "/thumbnail"): first, url(server, first, "/frames/1/thumbnail"): first}
    for target, ds in targets.items():
        resp = web.get(target)
        assert resp.status_code == 200, (target, resp.text)
        assert resp.headers["content-type"] == "image/jpeg"
        img = Image.open(io.BytesIO(resp.content))
        assert max(img.size) <= 128
        assert img.size == (128, 128)  # 32x32 square, fitted to the default 128x128
        assert np.array_equal(image(resp), image(web.get(url(server, ds, "/thumbnail"))))
        again = web.get(target, headers={"If-None-Match": resp.headers["etag"]})
        assert again.status_code == 304
        assert "max-age" in resp.headers["cache-control"]
    direct = image(web.get(url(server, middle, "/thumbnail")))
    assert np.array_equal(direct, image(web.get(series + "/thumbnail")))  # the series' middle image
    small = Image.open(io.BytesIO(web.get(series + "/thumbnail", params={"viewport": "16,16"}).content))
    assert small.size == (16, 16)
    png = web.get(series + "/thumbnail", headers=PNG)
    assert png.headers["content-type"] == "image/png"
    # its speed is measured in benchmarks/pixels.py (thumbnails), never asserted here (issue 10 part 9)
    with web.Client() as http:
        thumb = http.get(series + "/thumbnail")
        repeats = [http.get(series + "/thumbnail") for _ in range(5)]
    assert all(r.status_code == 200 and r.content == thumb.content for r in repeats)


def test_series_thumbnail_follows_new_instances(server: YunyingServer) -> None:
    """The series' chosen image is kept only while nothing is stored: two more slices move the middle."""
    study, series = generate_uid(), generate_uid()
    stow(server, *(make_ct(study, series, number=k, rows=16, cols=16) for k in (1, 2, 3)))
    thumb = f"{server.dicomweb_url}/studies/{study}/series/{series}/thumbnail"
    before = web.get(thumb, headers=PNG)
    assert before.status_code == 200 and web.get(thumb, headers=PNG).headers["etag"] == before.headers["etag"]
    stow(server, *(make_ct(study, series, number=k, rows=16, cols=16) for k in (4, 5)))
    after = web.get(thumb, headers=PNG)
    assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]


def test_progressive_first_image(server: YunyingServer) -> None:
    """A phone shows a small preview at once, then the full frame (README: progressive first image)."""
    from yunying.pixels import transcode_dataset

    big = make_ct(rows=512, cols=512)
    big.PixelRepresentation = 1
    yy, xx = np.mgrid[0:512, 0:512]
    arr = (1024 + 300 * np.sin(xx / 40) * np.cos(yy / 50) + 200 * ((xx - 300) ** 2 + (yy - 200) ** 2 < 80 ** 2))
    arr = arr.astype(np.int16)
    big.BitsStored, big.HighBit = 16, 15
    big.PixelData = arr.tobytes()
    big.RescaleSlope, big.RescaleIntercept = 1, -1024
    htj2k = transcode_dataset(big, "1.2.840.10008.1.2.4.202")  # what a phone-friendly archive keeps
    stow(server, htj2k)
    preview = web.get(url(server, htj2k, "/rendered"), params={"viewport": "128,128", "quality": "50",
                                                                  "window": "40,400"})
    full = web.get(url(server, htj2k, "/rendered"), params={"window": "40,400", "quality": "100"})
    assert len(preview.content) * 4 < len(full.content)
    small = image(preview)
    assert small.shape == (128, 128)
    want = reference(big, 40, 400)
    close(image(full), want, tol=40)
    assert np.abs(image(full).astype(int) - want).mean() < 2
    # the preview is the same picture at a quarter of the size
    down = want.reshape(128, 4, 128, 4).mean(axis=(1, 3))
    assert np.abs(small.astype(int) - down).mean() < 6
    thumb = Image.open(io.BytesIO(web.get(url(server, htj2k, "/thumbnail")).content))
    assert thumb.size == (128, 128)


def _volume(study: str, series: str, *, slices: int = 40, n: int = 64, sphere=(40.0, 20.0, 30.0),
            radius: float = 4.0, spacing_z: float = 2.0) -> list[pydicom.Dataset]:
    """An axial stack, 1 mm pixels, slices spacing_z apart from z=0, with a bright sphere (LPS mm)."""
    out = []
    x = np.arange(n, dtype=float)
    xx, yy = np.meshgrid(x, x)  # columns run along +x, rows along +y
    for k in range(slices):
        z = k * spacing_z
        ds = make_ct(study, series, number=k + 1, rows=n, cols=n)
        inside = (xx - sphere[0]) ** 2 + (yy - sphere[1]) ** 2 + (z - sphere[2]) ** 2 <= radius ** 2
        ds.PixelData = np.where(inside, 3000, 100).astype(np.uint16).tobytes()
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, z]
        ds.PixelSpacing = [1, 1]
        ds.SliceThickness = spacing_z
        out.append(ds)
    return out


@pytest.fixture(scope="module")
def volume(server: YunyingServer) -> str:
    study, series = generate_uid(), generate_uid()
    datasets = _volume(study, series)
    stow(server, *datasets[::-1])  # stored out of order: geometry sorts by position
    return f"{server.dicomweb_url}/studies/{study}/series/{series}/reformat"


def brightest(resp: httpx.Response) -> tuple[int, int]:
    """(row, column) of the centroid of the bright pixels."""
    arr = image(resp)
    rows, cols = np.nonzero(arr > arr.max() / 2)
    return round(float(rows.mean())), round(float(cols.mean()))


def test_reformat_puts_the_sphere_where_it_is(volume: str) -> None:
    # volume centre: x 31.5, y 31.5, z 39; coronal/sagittal rows run head (z 78) to feet (z 0)
    win = {"window": "1500,3000"}
    coronal = web.get(volume, params={"orientation": "coronal", "position": "-11.5", **win}, headers=PNG)
    assert image(coronal).shape == (79, 64)
    r, c = brightest(coronal)
    assert abs(r - 48) <= 1 and abs(c - 40) <= 1  # z = 30 -> row 78 - 30 = 48; x = 40 -> column 40
    sagittal = web.get(volume, params={"orientation": "sagittal", "position": "8.5", **win}, headers=PNG)
    r, c = brightest(sagittal)
    assert abs(r - 48) <= 1 and abs(c - 20) <= 1  # y = 20 -> column 20
    axial = web.get(volume, params={"orientation": "axial", "position": "-9", **win}, headers=PNG)
    r, c = brightest(axial)
    assert abs(r - 20) <= 1 and abs(c - 40) <= 1
    away = image(web.get(volume, params={"orientation": "coronal", "position": "20", **win}, headers=PNG))
    assert away.max() < 100  # the plane misses the sphere
    slab = image(web.get(volume, params={"orientation": "coronal", "position": "0", "thickness": "30",
                                           "mode": "mip", **win}, headers=PNG))
    assert slab.max() > 200  # the MIP slab 16.5..46.5 mm takes it in
    avg = image(web.get(volume, params={"orientation": "coronal", "position": "0", "thickness": "30",
                                          "mode": "avg", **win}, headers=PNG))
    assert 0 < avg.max() < slab.max()
    oblique = web.get(volume, params={"orientation": "oblique", "u": "1,0,0", "v": "0,0,-1",
                                        "position": "-11.5", **win}, headers=PNG)
    assert brightest(oblique) == brightest(coronal)
    sized = Image.open(io.BytesIO(web.get(volume, params={"orientation": "coronal",
                                                            "viewport": "128,128"}).content))
    assert sized.size[1] == 128 and sized.format == "JPEG"


@pytest.mark.parametrize("params", [{"orientation": "diagonal"}, {"mode": "max"}, {"position": "abc"},
                                    {"thickness": "-1"}, {"orientation": "oblique", "u": "1,0,0"},
                                    {"orientation": "oblique", "u": "1,0,0", "v": "2,0,0"},
                                    {"window": "1,2,3,4"}, {"viewport": "5000,5000"}])
def test_reformat_bad_parameters_400(volume: str, params: dict[str, str]) -> None:
    resp = web.get(volume, params=params)
    assert resp.status_code == 400, (params, resp.text)
    assert resp.json()["error"].split(":")[0] in {*params, "v"}  # a missing v is named too


def test_reformat_unsuitable_geometry_400(server: YunyingServer, series3: list[pydicom.Dataset]) -> None:
    first = series3[0]  # make_ct has no plane geometry
    resp = web.get(f"{server.dicomweb_url}/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
                     "/reformat", params={"orientation": "coronal"})
    assert resp.status_code == 400
    assert "geometry" in resp.json()["error"]
    study, series = generate_uid(), generate_uid()
    twins = _volume(study, series, slices=2)
    twins[1].ImagePositionPatient = [0, 0, 0]
    stow(server, *twins)
    resp = web.get(f"{server.dicomweb_url}/studies/{study}/series/{series}/reformat")
    assert resp.status_code == 400 and "same position" in resp.json()["error"]
    assert web.get(f"{server.dicomweb_url}/studies/{study}/series/{generate_uid()}/reformat").status_code == 404


def test_enhanced_multiframe_reformat(server: YunyingServer) -> None:
    """One instance, 20 frames with per-frame Plane Position (PS3.3 C.7.6.16): the same sphere test."""
    study, series = generate_uid(), generate_uid()
    slices = _volume(study, series, slices=20, n=32, sphere=(10.0, 20.0, 16.0), radius=3.0)
    ds = make_ct(study, series, rows=32, cols=32, frames=20)
    ds.PixelData = b"".join(s.PixelData for s in slices[::-1])  # frames stored head first
    shared = pydicom.Dataset()
    shared.PlaneOrientationSequence = [pydicom.Dataset()]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PixelMeasuresSequence = [pydicom.Dataset()]
    shared.PixelMeasuresSequence[0].PixelSpacing = [1, 1]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for s in slices[::-1]:
        item = pydicom.Dataset()
        item.PlanePositionSequence = [pydicom.Dataset()]
        item.PlanePositionSequence[0].ImagePositionPatient = s.ImagePositionPatient
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    stow(server, ds)
    target = f"{server.dicomweb_url}/studies/{study}/series/{series}/reformat"
    # centre x 15.5, y 15.5, z 19; coronal rows: z 38 at the top
    coronal = web.get(target, params={"orientation": "coronal", "position": "4.5", "window": "1500,3000"},
                        headers=PNG)
    assert image(coronal).shape == (39, 32)
    r, c = brightest(coronal)
    assert abs(r - 22) <= 1 and abs(c - 10) <= 1  # z 16 -> row 38 - 16; x 10 -> column 10


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(params=st.dictionaries(st.sampled_from(["orientation", "position", "thickness", "mode", "u", "v", "window",
                                               "viewport", "quality", "annotation", "x"]),
                              st.one_of(st.text(max_size=12), st.sampled_from(
                                  ["oblique", "coronal", "1,0,0", "0,0,0", "nan", "inf", "-1e308", "1e308",
                                   "0,1", "mip", "1,1,linear", "99999", "1,1", "0"])), max_size=5),
       tail=st.sampled_from(["/reformat", "/rendered", "/thumbnail"]),
       accept=st.sampled_from([None, "*/*", "image/png", "image/gif", "text/html", ";;", 'multipart/related; type="image/jpeg"']))
def test_rendered_and_reformat_never_5xx(volume: str, params: dict[str, str], tail: str, accept: str | None) -> None:
    target = volume.removesuffix("/reformat") + tail
    resp = web.get(target, params=params, headers={"Accept": accept} if accept else {}, timeout=60)
    assert resp.status_code < 500, (tail, params, resp.text)
    if resp.status_code >= 400:
        assert resp.json()["error"]
