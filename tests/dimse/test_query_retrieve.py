"""C-FIND, C-MOVE and C-GET against DCMTK's findscu, movescu (to a storescp) and getscu."""
from __future__ import annotations

import subprocess
import time
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from conftest import SCP_AET, SCU_AET, dcmtk_storescp, make_instance, run, sample_file

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
    found: list[pydicom.Dataset] = [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
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
    with dcmtk_storescp(storescp_port, tmp_path / "received", *getattr(request, "param", [])) as out:
        yield out


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


def test_move_patient_root_study_level_without_patient_id(scp, loaded, storescp) -> None:
    """Issue 10 part 10: a missing PatientID above a Patient Root STUDY move is universal matching."""
    res = move(scp.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID=1.2.826.1.3", root="-P")
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
    plain.mkdir()
    kept.mkdir()
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


# --- C-MOVE sub-operations from the archive's pieces (fastsend: sendmsg, own responses) ----

def _multiframe(path: Path, sop: str, *, odd: bool) -> Path:
    """A native multi-frame instance in Explicit VR LE: rtdose (15 frames of 10x10x32 bit), or
    3 frames of 3x3x8 bit whose odd-length value carries its padding byte."""
    ds = pydicom.dcmread(sample_file("rtdose.dcm"))
    if odd:
        ds.Rows = ds.Columns = 3
        ds.NumberOfFrames, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 3, 8, 8, 7
        ds.PixelData = bytes(range(27)) + b"\0"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.1.9", "1.2.826.1.9.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(sop)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("storescp", [["+B", "-pdu", "4096"]], indirect=True)
def test_move_multiframe_native_bit_exact_across_pdu_and_frame_boundaries(scp, archive, storescp,
                                                                        tmp_path: Path) -> None:
    from dimse.fastsend import part10_body

    for sop, odd in (("1.2.826.1.9.1.1", False), ("1.2.826.1.9.1.2", True)):
        archive.store(_multiframe(tmp_path / f"{sop}.dcm", sop, odd=odd), Origin("import", "test"))
    res = move(scp.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID=1.2.826.1.9")
    assert res.returncode == 0, res.stderr
    got = {pydicom.dcmread(p).SOPInstanceUID: p.read_bytes() for p in storescp.iterdir()}
    assert sorted(got) == ["1.2.826.1.9.1.1", "1.2.826.1.9.1.2"]
    for sop, raw in got.items():
        row = archive.row(sop)
        assert row is not None and len(archive.read_part10_parts(row)) > 3  # the pieces path
        source = (tmp_path / f"{sop}.dcm").read_bytes()  # what was sent, not the archive's own reading
        assert bytes(part10_body(raw)) == bytes(part10_body(source))


def _copies(archive, tmp_path: Path, n: int, study: str = "1.2.826.1.7") -> None:
    for i in range(n):
        archive.store(make_instance(tmp_path / f"c{i}.dcm", study=study, series=f"{study}.1",
                                    sop=f"{study}.1.{i}"), Origin("import", "test"))


def test_move_pending_responses_count_every_sub_operation(scp, archive, storescp, tmp_path: Path) -> None:
    """Pending responses may be fewer than sub-operations (at most one per PENDING_INTERVAL_S),
    but each one's counts add up, and the final one counts them all."""
    from pynetdicom.presentation import build_context

    from dimse import scu, uids
    from dimse.cli import build_identifier
    from dimse.syntaxes import NATIVE

    _copies(archive, tmp_path, 40)
    model = uids.STUDY_ROOT_MOVE
    peer = scu.Peer("127.0.0.1", scp.port, called=SCP_AET, aet=SCU_AET)
    with scu.associate(peer, [build_context(model, NATIVE)]) as assoc:
        responses = [rsp for rsp, _ in assoc.send_c_move(
            build_identifier("STUDY", ["StudyInstanceUID=1.2.826.1.7"]), "STORESCP", model)]
    *pending, final = responses
    assert pending and all(r.Status == 0xFF00 for r in pending)
    counts = [(r.NumberOfRemainingSuboperations, r.NumberOfCompletedSuboperations) for r in pending]
    assert all(rem + done == 40 for rem, done in counts) and counts == sorted(counts, key=lambda c: c[1])
    assert counts[0][1] == 1  # the first sub-operation is always reported
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 40
    assert len(list(storescp.iterdir())) == 40


def test_move_counts_the_destinations_statuses_and_survives_its_abort(scp, archive, storescp_port: int,
                                                                      tmp_path: Path) -> None:
    """Responses read by our sending thread: failure and warning statuses counted as such; an
    A-ABORT read instead of a response fails that sub-operation and the rest, no hang."""
    from pynetdicom import AE, evt
    from pynetdicom.presentation import StoragePresentationContexts

    from dimse import scu
    from dimse.cli import build_identifier

    _copies(archive, tmp_path, 8)
    seen: list[str] = []

    def on_store(event) -> int:
        seen.append(event.request.AffectedSOPInstanceUID)
        if len(seen) == 5:
            event.assoc.abort()
        return {2: 0xA700, 3: 0xB007}.get(len(seen), 0x0000)

    dest = AE(ae_title="STORESCP")
    dest.supported_contexts = StoragePresentationContexts
    server = dest.start_server(("127.0.0.1", storescp_port), block=False,
                               evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert server is not None  # block=False: the server thread
    try:
        result = scu.move(scu.Peer("127.0.0.1", scp.port, called=SCP_AET, aet=SCU_AET, timeout=30),
                          build_identifier("STUDY", ["StudyInstanceUID=1.2.826.1.7"]), "STORESCP")
    finally:
        server.shutdown()
    assert (result.status, result.completed, result.warning, result.failed) == (0xB000, 2, 1, 5)
    never_sent = {f"1.2.826.1.7.1.{i}" for i in range(8)} - set(seen)
    assert sorted(result.failed_sops) == sorted({seen[1], seen[4], *never_sent})
    assert len(seen) == 5


def _get_association(port: int, handler, timeout: float = 10):
    """A pynetdicom C-GET requester (CT storage with the SCP role, plus C-FIND) on our SCP."""
    from pynetdicom import evt
    from pynetdicom.presentation import build_context, build_role

    from dimse import scu, uids
    from dimse.syntaxes import NATIVE

    ct_storage = "1.2.840.10008.5.1.4.1.1.2"
    contexts = [build_context(uids.STUDY_ROOT_GET, NATIVE), build_context(uids.STUDY_ROOT_FIND, NATIVE),
                build_context(ct_storage, NATIVE)]
    return scu.associate(scu.Peer("127.0.0.1", port, called=SCP_AET, aet=SCU_AET, timeout=timeout), contexts,
                         ext_neg=[build_role(ct_storage, scp_role=True)], handlers=[(evt.EVT_C_STORE, handler)])


def test_get_then_the_same_association_still_answers(scp, archive, tmp_path: Path) -> None:
    """C-GET reads its C-STORE responses in the reactor's own thread: the reactor must go on
    serving the association afterwards (a C-FIND answered, a prompt release)."""
    from dimse import uids
    from dimse.cli import build_identifier

    _copies(archive, tmp_path, 12)
    got: list[bytes] = []

    def on_store(event) -> int:
        got.append(event.encoded_dataset())
        return 0x0000

    with _get_association(scp.port, on_store) as assoc:
        responses = [rsp for rsp, _ in assoc.send_c_get(
            build_identifier("STUDY", ["StudyInstanceUID=1.2.826.1.7"]), uids.STUDY_ROOT_GET)]
        assert responses[-1].Status == 0x0000 and responses[-1].NumberOfCompletedSuboperations == 12
        found = [rsp.Status for rsp, _ in assoc.send_c_find(
            build_identifier("STUDY", ["StudyInstanceUID=1.2.826.1.7"]), uids.STUDY_ROOT_FIND)]
        assert found == [0xFF00, 0x0000]
    assert len(got) == 12
    from dimse.fastsend import part10_body

    sources = {str(pydicom.dcmread(f).SOPInstanceUID): bytes(part10_body(f.read_bytes()))
               for f in tmp_path.glob("c*.dcm")}  # the files as sent, not the archive's own reading
    for raw in got:
        assert bytes(part10_body(raw)) == sources[str(pydicom.dcmread(BytesIO(raw)).SOPInstanceUID)]


def test_get_cancel_received_while_waiting_for_a_store_response(scp, archive, tmp_path: Path) -> None:
    """A C-CANCEL that arrives while our thread reads the C-STORE response itself is honoured."""
    from dimse import uids
    from dimse.cli import build_identifier

    _copies(archive, tmp_path, 30)
    holder: dict = {}

    def on_store(event) -> int:
        holder["n"] = holder.get("n", 0) + 1
        if holder["n"] == 3:
            holder["assoc"].send_c_cancel(5, query_model=uids.STUDY_ROOT_GET)
            time.sleep(0.2)  # the cancel is on the wire before this response
        return 0x0000

    with _get_association(scp.port, on_store) as assoc:
        holder["assoc"] = assoc
        responses = [rsp for rsp, _ in assoc.send_c_get(
            build_identifier("STUDY", ["StudyInstanceUID=1.2.826.1.7"]), uids.STUDY_ROOT_GET, msg_id=5)]
    final = responses[-1]
    assert final.Status == 0xFE00
    assert final.NumberOfCompletedSuboperations == 3 and final.NumberOfRemainingSuboperations == 27


@pytest.mark.parametrize("storescp", [["+xi", "+B"]], indirect=True)
def test_move_to_an_implicit_only_destination_transcodes_dataset_equal(scp, archive, storescp,
                                                                       tmp_path: Path) -> None:
    # stored Explicit VR LE (the pieces path is not possible): the archive re-encodes it
    archive.store(_multiframe(tmp_path / "mf.dcm", "1.2.826.1.9.1.1", odd=False), Origin("import", "test"))
    res = move(scp.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID=1.2.826.1.9")
    assert res.returncode == 0, res.stderr
    (path,) = list(storescp.iterdir())
    got = pydicom.dcmread(path)
    assert got.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
    original = pydicom.dcmread(tmp_path / "mf.dcm")
    assert {e.tag: e.value for e in got} == {e.tag: e.value for e in original}
