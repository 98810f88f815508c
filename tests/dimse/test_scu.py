"""Our SCU (dimse/scu.py and the `yunying dimse` CLI) against our SCP and against Orthanc."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pydicom
import pytest
from conftest import (
    SCP_AET,
    SCU_AET,
    collector,
    dcmtk_storescp,
    free_port,
    make_instance,
    sample_file,
    start_scp,
    stored_sops,
)
from pydicom import Dataset
from pynetdicom.presentation import build_context

from benchmarks import orthanc as orthanc_mod
from dimse import scu, uids
from dimse.cli import build_identifier
from index.model import Origin
from tests.conftest import missing_tool
from yunying.archive import Archive
from yunying.cli import main as yunying_main


def study_ident(**keys: str) -> Dataset:
    return build_identifier("STUDY", [f"{k}={v}" for k, v in keys.items()] + ["StudyInstanceUID"])


@pytest.fixture
def two_studies(archive: Archive, tmp_path: Path) -> Archive:
    for i in range(3):
        f = make_instance(tmp_path / f"a{i}.dcm", study="1.2.5.1", series="1.2.5.1.1", sop=f"1.2.5.1.1.{i}")
        archive.store(f, Origin("import", "t"))
    archive.store(sample_file("MR_small_RLE.dcm"), Origin("import", "t"))
    return archive


def peer(port: int, called: str = SCP_AET) -> scu.Peer:
    return scu.Peer("127.0.0.1", port, called=called, aet=SCU_AET, timeout=30)


def test_echo_find_against_our_scp(scp, two_studies) -> None:
    assert scu.echo(peer(scp.port)) == 0
    found = list(scu.find(peer(scp.port), study_ident(PatientID="P1")))
    assert [str(ds.StudyInstanceUID) for ds in found] == ["1.2.5.1"]


def test_find_failure_raises_with_comment(scp, two_studies) -> None:
    bad = build_identifier("SERIES", ["SeriesInstanceUID"])
    with pytest.raises(scu.DimseFailure) as info:
        list(scu.find(peer(scp.port), bad))
    assert info.value.status == 0xA900 and "StudyInstanceUID" in info.value.comment


def test_rejected_association_raises(scp) -> None:
    with pytest.raises(scu.DimseFailure, match="rejected"):
        list(scu.find(scu.Peer("127.0.0.1", scp.port, called=SCP_AET, aet="STRANGER"), study_ident()))


def test_many_queries_on_one_association_lose_nothing(scp, two_studies) -> None:
    """measured-facts: pynetdicom's reader race drops a response every few hundred C-FINDs."""
    model = scu.MODELS[("study", "find")]
    ident = study_ident()
    from pynetdicom.presentation import build_context

    with scu.associate(peer(scp.port), [build_context(model, scu.UNCOMPRESSED)]) as assoc:
        for _ in range(400):
            statuses = [int(rsp.Status) for rsp, _ in assoc.send_c_find(ident, model)]
            assert statuses == [0xFF00, 0xFF00, 0x0000]


def test_get_into_another_archive(scp, two_studies, tmp_path: Path) -> None:
    target = Archive(tmp_path / "other")
    try:
        result = scu.get(peer(scp.port), build_identifier("STUDY", ["StudyInstanceUID=1.2.5.1"]), target)
        assert result.ok and result.completed == 3
        assert stored_sops(target) == {"1.2.5.1.1.0", "1.2.5.1.1.1", "1.2.5.1.1.2"}
    finally:
        target.close()


def test_get_compressed_kept_as_stored(scp, two_studies) -> None:
    original = pydicom.dcmread(sample_file("MR_small_RLE.dcm"))
    got: list[bytes] = []
    result = scu.get(peer(scp.port), build_identifier("STUDY", [f"StudyInstanceUID={original.StudyInstanceUID}"]),
                     collector(got), compressed=[original.file_meta.TransferSyntaxUID])
    assert result.ok and len(got) == 1
    from io import BytesIO
    ds = pydicom.dcmread(BytesIO(got[0]))
    assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert ds.PixelData == original.PixelData


def test_move_between_two_of_our_scps(two_studies, tmp_path: Path) -> None:
    from dimse.server import start_dimse
    from yunying.settings import Settings

    dest_archive = Archive(tmp_path / "dest")
    dest = start_scp(dest_archive, 1, dimse_accept_all=True)
    source = start_dimse(two_studies, Settings(host="127.0.0.1", dimse_port=0, aet="SOURCE", peers={
        SCU_AET: ("127.0.0.1", 1), "DEST": ("127.0.0.1", dest.port)}))
    ident = build_identifier("STUDY", ["StudyInstanceUID=1.2.5.1"])
    try:
        result = scu.move(peer(source.port, "SOURCE"), ident, "DEST")
        assert result.ok and result.completed == 3, result
        assert stored_sops(dest_archive) == {"1.2.5.1.1.0", "1.2.5.1.1.1", "1.2.5.1.1.2"}
        assert scu.move(peer(source.port, "SOURCE"), ident, "NOPE").status == 0xA801
    finally:
        source.stop()
        dest.stop()
        dest_archive.close()


def test_cli_echo_find(scp, two_studies, capsys) -> None:
    base = ["127.0.0.1", str(scp.port), "--aet", SCU_AET, "--called", SCP_AET]
    assert yunying_main(["dimse", "echo", *base]) == 0
    assert yunying_main(["dimse", "find", *base, "-k", "PatientID=P1", "-k", "StudyInstanceUID",
                         "-L", "STUDY"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "1.2.5.1" in out[0]


def test_cli_get(scp, two_studies, tmp_path: Path) -> None:
    base = ["127.0.0.1", str(scp.port), "--aet", SCU_AET, "--called", SCP_AET]
    out = tmp_path / "got"
    assert yunying_main(["dimse", "get", *base, "-k", "StudyInstanceUID=1.2.5.1", "--out", str(out)]) == 0
    assert len(list(out.iterdir())) == 3


# --- against Orthanc ------------------------------------------------------------------------



@pytest.fixture
def orthanc_and_us(two_studies, tmp_path: Path):
    if not orthanc_mod.orthanc_available():
        missing_tool("Orthanc not installed")
    inbox = Archive(tmp_path / "inbox")
    our_port = free_port()
    from dimse.server import start_dimse
    from yunying.settings import Settings

    orthanc = orthanc_mod.start_orthanc(tmp_path / "orthanc", aet="ORTHANC", modalities={
        SCU_AET: ("127.0.0.1", our_port)})
    ours = start_dimse(inbox, Settings(host="127.0.0.1", dimse_port=our_port, aet=SCU_AET,
                                       peers={"ORTHANC": ("127.0.0.1", orthanc.dimse_port)}))
    yield orthanc, ours, inbox
    ours.stop()
    orthanc.stop()
    inbox.close()


def test_against_orthanc_store_find_move_get(orthanc_and_us, two_studies, tmp_path: Path) -> None:
    orthanc, _ours, inbox = orthanc_and_us
    remote = scu.Peer("127.0.0.1", orthanc.dimse_port, called="ORTHANC", aet=SCU_AET, timeout=30)
    assert scu.echo(remote) == 0
    # C-STORE a study of ours to Orthanc (send a study to a PACS), incl. an RLE instance
    sent = scu.store(remote, two_studies, "1.2.5.1")
    assert sent.ok and sent.completed == 3, sent
    rle = pydicom.dcmread(sample_file("MR_small_RLE.dcm"))
    assert scu.store(remote, two_studies, rle.StudyInstanceUID).completed == 1
    # C-FIND on Orthanc at study and image level
    studies = {str(ds.StudyInstanceUID) for ds in scu.find(remote, study_ident())}
    assert studies == {"1.2.5.1", str(rle.StudyInstanceUID)}
    images = list(scu.find(remote, build_identifier("IMAGE", [
        "StudyInstanceUID=1.2.5.1", "SeriesInstanceUID=1.2.5.1.1", "SOPInstanceUID"])))
    assert len(images) == 3
    # C-MOVE from Orthanc to ourselves: received through our SCP into the inbox archive
    moved = scu.move(remote, build_identifier("STUDY", ["StudyInstanceUID=1.2.5.1"]), SCU_AET)
    assert moved.ok and moved.completed == 3, moved
    assert stored_sops(inbox) == {"1.2.5.1.1.0", "1.2.5.1.1.1", "1.2.5.1.1.2"}
    # C-GET from Orthanc on our association
    got: list[bytes] = []
    result = scu.get(remote, build_identifier("STUDY", [f"StudyInstanceUID={rle.StudyInstanceUID}"]),
                     collector(got), compressed=True)
    assert result.ok and len(got) == 1, result
    from io import BytesIO
    back = pydicom.dcmread(BytesIO(got[0]))
    assert (back.pixel_array == rle.pixel_array).all()


def test_find_chinese_name_stored_in_gb18030(scp, archive, tmp_path: Path) -> None:
    """Design rule 7: decoded at ingest, matched in Unicode, answered in ISO_IR 192."""
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    ds.SpecificCharacterSet, ds.PatientName = "GB18030", "Wang^XiaoDong=王^小东"
    ds.save_as(tmp_path / "cn.dcm", enforce_file_format=True)
    archive.store(tmp_path / "cn.dcm", Origin("import", "t"))
    for pattern in ("王*", "wang*"):
        ident = build_identifier("STUDY", [f"PatientName={pattern}", "StudyInstanceUID"])
        ident.SpecificCharacterSet = "ISO_IR 192"
        found = list(scu.find(peer(scp.port), ident))
        assert len(found) == 1, pattern
        assert found[0].SpecificCharacterSet == "ISO_IR 192"
        assert str(found[0].PatientName) == "Wang^XiaoDong=王^小东"


def test_cli_store_and_move_to_storescp(tmp_path: Path, storescp_port: int) -> None:
    data = tmp_path / "cli-data"
    arch = Archive(data)
    for i in range(2):
        arch.store(make_instance(tmp_path / f"s{i}.dcm", study="1.2.6.1", series="1.2.6.1.1",
                                 sop=f"1.2.6.1.1.{i}"), Origin("import", "t"))
    arch.close()
    with dcmtk_storescp(storescp_port, tmp_path / "received") as out:
        assert yunying_main(["dimse", "store", "127.0.0.1", str(storescp_port), "--called", "STORESCP",
                             "--study", "1.2.6.1", "--data", str(data)]) == 0
        assert len(list(out.iterdir())) == 2
        # and C-MOVE through our SCP (serving that data) to the same storescp
        for f in out.iterdir():
            f.unlink()
        served = Archive(data)
        scp = start_scp(served, storescp_port)
        try:
            assert yunying_main(["dimse", "move", "127.0.0.1", str(scp.port), "--aet", SCU_AET, "--called",
                                 SCP_AET, "-k", "StudyInstanceUID=1.2.6.1", "--dest", "STORESCP"]) == 0
        finally:
            scp.stop()
            served.close()
        assert len(list(out.iterdir())) == 2


def test_scp_sockets_have_nodelay(scp) -> None:
    seen: list[int] = []
    with scu.associate(peer(scp.port), [build_context(uids.VERIFICATION)]) as assoc:
        for served in scp.ae.active_associations:
            if served.is_acceptor:
                seen.append(served.dul.socket.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        assert assoc.dul.socket is not None and assoc.dul.socket.socket is not None
        ours = assoc.dul.socket.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert seen and all(seen) and ours


def test_reactor_hands_back_a_response_it_takes(scp) -> None:
    """The pynetdicom 3.0.4 race, made deterministic: the reactor serving a *response* puts it back.

    (Measured without the fix: 8 of 1,500 C-FINDs on one association lost a pending response
    under CPU load; with it, none.)
    """
    from pynetdicom.dimse_primitives import C_FIND

    with scu.associate(peer(scp.port), [build_context(uids.VERIFICATION)]) as assoc:
        queue = assoc.dimse.msg_queue
        first, stolen = C_FIND(), C_FIND()
        first.MessageIDBeingRespondedTo = stolen.MessageIDBeingRespondedTo = 1
        first.Status, stolen.Status = 0x0000, 0xFF00
        assoc._reactor_checkpoint.clear()  # keep the real reactor out of the way
        while not assoc._is_paused:
            time.sleep(0.001)
        queue.put((1, first))
        assoc._serve_request(stolen, 1)  # what the reactor does when it wins the race
        assert [m.Status for _, m in list(queue.queue)] == [0xFF00, 0x0000]
        queue.queue.clear()
        assoc._reactor_checkpoint.set()
