"""C-FIND, C-MOVE and C-GET against DCMTK's findscu, movescu (to a storescp) and getscu."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from conftest import DCMTK, SCP_AET, SCU_AET, make_instance, run, sample_file

from index.model import Origin

# Two patients; P1 has two studies (CT Jan, MR Feb), P2 one (CT Jan 20).
LAYOUT = [  # study, series, sop, patient, name, modality, date
    ("1.2.826.1.1", "1.2.826.1.1.1", "1.2.826.1.1.1.1", "P1", "Doe^John", "CT", "20240102"),
    ("1.2.826.1.1", "1.2.826.1.1.1", "1.2.826.1.1.1.2", "P1", "Doe^John", "CT", "20240102"),
    ("1.2.826.1.1", "1.2.826.1.1.2", "1.2.826.1.1.2.1", "P1", "Doe^John", "SR", "20240102"),
    ("1.2.826.1.2", "1.2.826.1.2.1", "1.2.826.1.2.1.1", "P1", "Doe^John", "MR", "20240203"),
    ("1.2.826.1.3", "1.2.826.1.3.1", "1.2.826.1.3.1.1", "P2", "Roe^Jane", "CT", "20240120"),
]


@pytest.fixture
def loaded(archive, tmp_path: Path):
    for i, (study, series, sop, pid, name, mod, date) in enumerate(LAYOUT):
        f = make_instance(tmp_path / f"in{i}.dcm", study=study, series=series, sop=sop,
                          patient_id=pid, name=name, modality=mod, date=date)
        archive.store(f, Origin("import", "test"))
    return archive


def find(port: int, tmp: Path, *keys: str, root: str = "-S") -> tuple[list[pydicom.Dataset], str]:
    """findscu's responses (-X writes each one), and its debug log (status, ErrorComment)."""
    out = tmp / f"find{time.monotonic_ns()}"
    out.mkdir()
    args = [root, "-d", "-X", "-od", str(out), "-aet", SCU_AET, "-aec", SCP_AET, "127.0.0.1", str(port)]
    for k in keys:
        args += ["-k", k]
    res = run("findscu", *args)
    found = [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    return found, res.stderr + res.stdout


def values(found: list[pydicom.Dataset], keyword: str) -> list[str]:
    return sorted(str(ds.get(keyword, "")) for ds in found)


def test_find_study_level_by_patient(scp, loaded, tmp_path: Path) -> None:
    found, _ = find(scp.port, tmp_path, "QueryRetrieveLevel=STUDY", "PatientID=P1", "StudyInstanceUID",
                    "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "PatientName")
    assert values(found, "StudyInstanceUID") == ["1.2.826.1.1", "1.2.826.1.2"]
    first = next(ds for ds in found if ds.StudyInstanceUID == "1.2.826.1.1")
    assert sorted(first.ModalitiesInStudy) == ["CT", "SR"]
    assert int(first.NumberOfStudyRelatedInstances) == 3
    assert str(first.PatientName) == "Doe^John"
    assert first.RetrieveAETitle == SCP_AET and first.QueryRetrieveLevel == "STUDY"
    # only the requested keys come back (plus the ones the SCP always adds)
    assert "StudyDate" not in first


def test_find_wildcard_and_date_range(scp, loaded, tmp_path: Path) -> None:
    found, _ = find(scp.port, tmp_path, "QueryRetrieveLevel=STUDY", "PatientName=*oe^J*",
                    "StudyInstanceUID")
    assert len(found) == 3
    found, _ = find(scp.port, tmp_path, "QueryRetrieveLevel=STUDY", "StudyDate=20240101-20240131",
                    "StudyInstanceUID")
    assert values(found, "StudyInstanceUID") == ["1.2.826.1.1", "1.2.826.1.3"]
    found, _ = find(scp.port, tmp_path, "QueryRetrieveLevel=STUDY", "StudyDate=20240201-",
                    "StudyInstanceUID")
    assert values(found, "StudyInstanceUID") == ["1.2.826.1.2"]
    found, _ = find(scp.port, tmp_path, "QueryRetrieveLevel=STUDY", "ModalitiesInStudy=MR",
                    "StudyInstanceUID")
    assert values(found, "StudyInstanceUID") == ["1.2.826.1.2"]


def test_find_uid_list(scp, loaded, tmp_path: Path) -> None:
    found, _ = find(scp.port, tmp_path, "QueryRetrieveLevel=STUDY",
                    "StudyInstanceUID=1.2.826.1.2\\1.2.826.1.3")
    assert values(found, "StudyInstanceUID") == ["1.2.826.1.2", "1.2.826.1.3"]


def test_find_series_and_image_levels(scp, loaded, tmp_path: Path) -> None:
    found, _ = find(scp.port, tmp_path, "QueryRetrieveLevel=SERIES", "StudyInstanceUID=1.2.826.1.1",
                    "SeriesInstanceUID", "Modality", "NumberOfSeriesRelatedInstances")
    assert values(found, "Modality") == ["CT", "SR"]
    found, _ = find(scp.port, tmp_path, "QueryRetrieveLevel=SERIES", "StudyInstanceUID=1.2.826.1.1",
                    "Modality=SR", "SeriesInstanceUID")
    assert values(found, "SeriesInstanceUID") == ["1.2.826.1.1.2"]
    found, _ = find(scp.port, tmp_path, "QueryRetrieveLevel=IMAGE", "StudyInstanceUID=1.2.826.1.1",
                    "SeriesInstanceUID=1.2.826.1.1.1", "SOPInstanceUID", "SOPClassUID")
    assert values(found, "SOPInstanceUID") == ["1.2.826.1.1.1.1", "1.2.826.1.1.1.2"]


def test_find_patient_root(scp, loaded, tmp_path: Path) -> None:
    found, _ = find(scp.port, tmp_path, "QueryRetrieveLevel=PATIENT", "PatientID=P*", "PatientName",
                    root="-P")
    assert values(found, "PatientID") == ["P1", "P2"]
    found, _ = find(scp.port, tmp_path, "QueryRetrieveLevel=STUDY", "PatientID=P1", "StudyInstanceUID",
                    root="-P")
    assert values(found, "StudyInstanceUID") == ["1.2.826.1.1", "1.2.826.1.2"]


@pytest.mark.parametrize("keys, reason", [
    (("QueryRetrieveLevel=SERIES", "SeriesInstanceUID"), "StudyInstanceUID"),
    (("QueryRetrieveLevel=FOO", "StudyInstanceUID"), "QueryRetrieveLevel"),
    (("QueryRetrieveLevel=STUDY", "StudyDate=2024XX01"), "StudyDate"),
    (("QueryRetrieveLevel=PATIENT", "PatientID"), "QueryRetrieveLevel"),  # no PATIENT in Study Root
])
def test_find_bad_identifier_is_refused_with_reason(scp, loaded, tmp_path: Path, keys, reason) -> None:
    found, log = find(scp.port, tmp_path, *keys)
    assert not found
    assert "0xa900" in log.lower(), log
    comment = next(line for line in log.splitlines() if "ErrorComment" in line)
    assert reason in comment, log


def test_find_from_unknown_ae_rejected(scp, loaded) -> None:
    res = run("findscu", "-S", "-aet", "STRANGER", "-aec", SCP_AET, "127.0.0.1", str(scp.port),
              "-k", "QueryRetrieveLevel=STUDY")
    assert res.returncode != 0
    assert "Calling AE Title Not Recognized" in res.stderr + res.stdout


# --- C-MOVE -------------------------------------------------------------------------------

@pytest.fixture
def storescp(storescp_port: int, tmp_path: Path, request):
    out = tmp_path / "received"
    out.mkdir()
    extra = getattr(request, "param", [])
    proc = subprocess.Popen([str(DCMTK / "storescp"), *extra, "-aet", "STORESCP", "-od", str(out),
                             str(storescp_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    yield out
    proc.terminate()
    proc.wait(10)


def move(port: int, *keys: str, dest: str = "STORESCP", root: str = "-S") -> subprocess.CompletedProcess[str]:
    args = [root, "-aet", SCU_AET, "-aec", SCP_AET, "-aem", dest, "127.0.0.1", str(port)]
    for k in keys:
        args += ["-k", k]
    return run("movescu", *args)


def received(out: Path) -> dict[str, pydicom.Dataset]:
    return {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(p) for p in out.iterdir())}


def test_move_study_to_storescp(scp, loaded, storescp) -> None:
    res = move(scp.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID=1.2.826.1.1")
    assert res.returncode == 0, res.stderr
    assert sorted(received(storescp)) == ["1.2.826.1.1.1.1", "1.2.826.1.1.1.2", "1.2.826.1.1.2.1"]


def test_move_series_and_image_levels(scp, loaded, storescp) -> None:
    res = move(scp.port, "QueryRetrieveLevel=SERIES", "StudyInstanceUID=1.2.826.1.1",
               "SeriesInstanceUID=1.2.826.1.1.2")
    assert res.returncode == 0, res.stderr
    res = move(scp.port, "QueryRetrieveLevel=IMAGE", "StudyInstanceUID=1.2.826.1.3",
               "SeriesInstanceUID=1.2.826.1.3.1", "SOPInstanceUID=1.2.826.1.3.1.1")
    assert res.returncode == 0, res.stderr
    assert sorted(received(storescp)) == ["1.2.826.1.1.2.1", "1.2.826.1.3.1.1"]


def test_move_patient_root_patient_level(scp, loaded, storescp) -> None:
    res = move(scp.port, "QueryRetrieveLevel=PATIENT", "PatientID=P2", root="-P")
    assert res.returncode == 0, res.stderr
    assert sorted(received(storescp)) == ["1.2.826.1.3.1.1"]


def test_move_unknown_destination(scp, loaded, storescp) -> None:
    res = move(scp.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID=1.2.826.1.1", dest="NOWHERE")
    assert "MoveDestinationUnknown" in res.stderr + res.stdout, res.stderr + res.stdout  # 0xA801
    assert not list(storescp.iterdir())


def test_move_bad_identifier(scp, loaded, storescp) -> None:
    res = move(scp.port, "QueryRetrieveLevel=SERIES", "SeriesInstanceUID=1.2.826.1.1.1")
    assert "DataSetDoesNotMatchSOPClass" in res.stderr + res.stdout, res.stderr + res.stdout  # 0xA900
    assert not list(storescp.iterdir())


def _store_sample(archive, name: str) -> pydicom.Dataset:
    archive.store(sample_file(name), Origin("import", "test"))
    return pydicom.dcmread(sample_file(name))


def test_move_transcodes_when_destination_wants_uncompressed(scp, archive, storescp) -> None:
    original = _store_sample(archive, "MR_small_RLE.dcm")
    res = move(scp.port, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={original.StudyInstanceUID}")
    assert res.returncode == 0, res.stderr
    got = received(storescp)[original.SOPInstanceUID]
    assert not got.file_meta.TransferSyntaxUID.is_compressed
    assert (got.pixel_array == original.pixel_array).all()


@pytest.mark.parametrize("storescp", [["+xa"]], indirect=True)
def test_move_sends_as_stored_when_accepted(scp, archive, storescp) -> None:
    original = _store_sample(archive, "SC_rgb_jpeg_dcmtk.dcm")
    res = move(scp.port, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={original.StudyInstanceUID}")
    assert res.returncode == 0, res.stderr
    got = received(storescp)[original.SOPInstanceUID]
    assert got.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert got.PixelData == original.PixelData


# --- C-GET --------------------------------------------------------------------------------

def get(port: int, out: Path, *keys: str, root: str = "-S", extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    args = [root, *extra, "-aet", SCU_AET, "-aec", SCP_AET, "-od", str(out), "127.0.0.1", str(port)]
    for k in keys:
        args += ["-k", k]
    return run("getscu", *args)


def test_get_study(scp, loaded, tmp_path: Path) -> None:
    out = tmp_path / "got"
    out.mkdir()
    res = get(scp.port, out, "QueryRetrieveLevel=STUDY", "StudyInstanceUID=1.2.826.1.1")
    assert res.returncode == 0, res.stderr
    assert sorted(received(out)) == ["1.2.826.1.1.1.1", "1.2.826.1.1.1.2", "1.2.826.1.1.2.1"]


def test_get_compressed_instance_transcoded_or_as_stored(scp, archive, tmp_path: Path) -> None:
    original = _store_sample(archive, "MR_small_RLE.dcm")
    plain, kept = tmp_path / "plain", tmp_path / "kept"
    plain.mkdir(), kept.mkdir()
    res = get(scp.port, plain, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={original.StudyInstanceUID}")
    assert res.returncode == 0, res.stderr
    got = received(plain)[original.SOPInstanceUID]
    assert not got.file_meta.TransferSyntaxUID.is_compressed
    assert (got.pixel_array == original.pixel_array).all()
    res = get(scp.port, kept, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={original.StudyInstanceUID}",
              extra=("+xr",))
    assert res.returncode == 0, res.stderr
    got = received(kept)[original.SOPInstanceUID]
    assert got.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert got.PixelData == original.PixelData


def test_get_bad_identifier(scp, loaded, tmp_path: Path) -> None:
    res = get(scp.port, tmp_path, "QueryRetrieveLevel=IMAGE", "StudyInstanceUID=1.2.826.1.1")
    # 0xA900; getscu then stops reading and trips over the FailedSOPInstanceUIDList data set
    assert "DataSetDoesNotMatchSOPClass" in res.stderr + res.stdout, res.stderr + res.stdout


@pytest.mark.parametrize("storescp", [["+B", "-pdu", "4096"]], indirect=True)
def test_move_sends_the_stored_bytes_bit_exact_in_small_pdus(scp, loaded, storescp, tmp_path: Path) -> None:
    # Sub-operations send the archive's stored bytes (dimse/fastsend.py), fragmented to the
    # destination's maximum PDU (4 KiB here: CT_small needs ~10 PDUs); storescp +B writes
    # what it received, which must be the data set exactly as it was stored.
    from dimse.fastsend import part10_body

    res = move(scp.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID=1.2.826.1.3")
    assert res.returncode == 0, res.stderr
    (path,) = list(storescp.iterdir())
    sent = make_instance(tmp_path / "again.dcm", study="1.2.826.1.3", series="1.2.826.1.3.1",
                         sop="1.2.826.1.3.1.1", patient_id="P2", name="Roe^Jane", date="20240120")
    assert bytes(part10_body(path.read_bytes())) == bytes(part10_body(sent.read_bytes()))
