"""`yunying serve` end to end: one archive behind DIMSE and DICOMweb (issue 3, part 5)."""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from conftest import SCU_AET, collector, dcmtk_storescp, free_port, run, sample_file
from dicomweb_client.api import DICOMwebClient

from benchmarks import net
from dimse import scu
from dimse.cli import build_identifier


@pytest.fixture
def server(tmp_path: Path, storescp_port: int):
    srv = net.start_yunying(tmp_path / "data", peers={SCU_AET: ("127.0.0.1", free_port()),
                                                      "STORESCP": ("127.0.0.1", storescp_port)})
    yield srv
    srv.stop()


def dataset_equal(a: pydicom.Dataset, b: pydicom.Dataset) -> bool:
    """Every element equal; (FFFC,FFFC) Data Set Trailing Padding aside: storescu drops it."""
    def elements(ds: pydicom.Dataset) -> dict:
        return {e.tag: e.value for e in ds if e.tag != 0xFFFCFFFC}
    return elements(a) == elements(b)


@pytest.mark.parametrize("name, flag", [("CT_small.dcm", "-xs"), ("SC_rgb_jpeg_dcmtk.dcm", "-xy")])
def test_c_store_then_dicomweb_sees_the_same_as_stow(server, tmp_path: Path, name: str, flag: str) -> None:
    src = sample_file(name)
    original = pydicom.dcmread(src)
    res = run("storescu", flag, "-aet", SCU_AET, "-aec", server.aet, "127.0.0.1", str(server.dimse_port), str(src))
    assert res.returncode == 0, res.stderr
    web = DICOMwebClient(server.dicomweb_url, headers=server.headers)
    found = web.search_for_instances(search_filters={"SOPInstanceUID": original.SOPInstanceUID})
    assert len(found) == 1
    via_dimse = web.retrieve_instance(original.StudyInstanceUID, original.SeriesInstanceUID,
                                      original.SOPInstanceUID)
    assert dataset_equal(via_dimse, original)
    # the same file again through STOW-RS: same stored content, same answer
    web.store_instances([pydicom.dcmread(src)])
    via_stow = web.retrieve_instance(original.StudyInstanceUID, original.SeriesInstanceUID,
                                     original.SOPInstanceUID)
    assert dataset_equal(via_stow, via_dimse)
    assert via_stow.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID


def test_stow_then_c_find_and_c_get(server) -> None:
    original = pydicom.dcmread(sample_file("MR_small.dcm"))
    DICOMwebClient(server.dicomweb_url, headers=server.headers).store_instances([original])
    peer = scu.Peer("127.0.0.1", server.dimse_port, called=server.aet, aet=SCU_AET)
    found = list(scu.find(peer, build_identifier("SERIES", [
        f"StudyInstanceUID={original.StudyInstanceUID}", "SeriesInstanceUID", "Modality",
        "NumberOfSeriesRelatedInstances"])))
    assert [(str(d.SeriesInstanceUID), d.Modality) for d in found] == [(original.SeriesInstanceUID, "MR")]
    got: list[bytes] = []
    result = scu.get(peer, build_identifier("STUDY", [f"StudyInstanceUID={original.StudyInstanceUID}"]),
                     collector(got))
    assert result.ok and len(got) == 1
    assert dataset_equal(pydicom.dcmread(BytesIO(got[0])), original)


def test_stow_then_c_move_to_storescp(server, tmp_path: Path, storescp_port: int) -> None:
    original = pydicom.dcmread(sample_file("JPEG2000.dcm"))
    DICOMwebClient(server.dicomweb_url, headers=server.headers).store_instances([original])
    with dcmtk_storescp(storescp_port, tmp_path / "received", "+xa") as out:
        res = run("movescu", "-S", "-aet", SCU_AET, "-aec", server.aet, "-aem", "STORESCP", "127.0.0.1",
                  str(server.dimse_port), "-k", "QueryRetrieveLevel=STUDY",
                  "-k", f"StudyInstanceUID={original.StudyInstanceUID}")
        assert res.returncode == 0, res.stderr
    (got,) = [pydicom.dcmread(p) for p in out.iterdir()]
    assert got.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert got.PixelData == original.PixelData  # the lossy bitstream, bit-exact
