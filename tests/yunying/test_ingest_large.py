"""Large files are ingested in place (pixel data mapped or copied in pieces) and come back identical."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import UID, ExplicitVRBigEndian, ImplicitVRLittleEndian

import yunying.ingest
from index.model import Origin
from tests.conftest import missing_tool
from tests.dicomweb.helpers import make_ct, part10
from yunying.archive import Archive
from yunying.bigfile import parse_large


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    a = Archive(tmp_path / "data")
    yield a
    a.close()


def _roundtrip(archive: Archive, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yunying.ingest, "STREAM_ABOVE", 1024)  # every file takes the in-place path
    res = archive.store(path, Origin("import", "test"))
    row = archive.instance(res.study, res.series, res.sop_instance)
    raw = path.read_bytes()
    got = archive.read_part10(row)
    import io

    from yunying.ingest import _dataset_start
    assert got[_dataset_start(io.BytesIO(got)):] == raw[_dataset_start(io.BytesIO(raw)):]


@pytest.mark.parametrize("ts", [None, ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_native_multiframe_in_place(archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    ts: str | None) -> None:
    ds = make_ct(rows=64, cols=64, frames=12)
    if ts:
        ds.file_meta.TransferSyntaxUID = UID(ts)
        if ts == ExplicitVRBigEndian:
            ds.PixelData = np.frombuffer(ds.PixelData, "<u2").byteswap().tobytes()
    path = tmp_path / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert parse_large(path).pixel_form == "native"
    _roundtrip(archive, path, monkeypatch)


@pytest.mark.parametrize("name", ["SC_rgb_rle_2frame.dcm", "JPEG2000.dcm", "emri_small_RLE.dcm"])
def test_encapsulated_in_place(archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    src = get_testdata_file(name, download=False)
    if not isinstance(src, str):
        missing_tool(f"{name}: not available offline (the test extra installs pydicom-data)")
    path = tmp_path / name
    path.write_bytes(Path(src).read_bytes())
    parsed = parse_large(path)
    assert parsed.pixel_form == "encapsulated"
    want = pydicom.dcmread(src)
    n = int(want.get("NumberOfFrames") or 1)
    frames = list(pydicom.encaps.generate_frames(want.PixelData, number_of_frames=n))
    _roundtrip(archive, path, monkeypatch)
    res = archive.row(want.SOPInstanceUID)
    assert res is not None
    assert [archive.read_frame(res, i + 1) for i in range(n)] == frames


def test_truncated_large_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.dcm"
    path.write_bytes(part10(make_ct(rows=64, cols=64, frames=4))[:-100])
    with pytest.raises(yunying.errors.ArchiveError):
        parse_large(path)
