"""DIMSE peers per hospital (issue 11, part 8), through `yunying serve` and DCMTK / pynetdicom:
C-STORE records the peer's hospital; C-FIND, C-MOVE and C-GET see that hospital's studies only,
unless the peer's entry says wider; the short peers form keeps meaning the default hospital."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from conftest import collector, dcmtk_storescp, free_port, run, sample_file
from pydicom.uid import generate_uid

from benchmarks import net
from dimse import scu
from dimse.cli import build_identifier

CT, MR = sample_file("CT_small.dcm"), sample_file("MR_small.dcm")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[net.YunyingServer, int]]:
    base = tmp_path_factory.mktemp("hospitals")
    receiver = free_port()
    peers = {
        "H1SCU": {"host": "127.0.0.1", "port": free_port(), "hospital": "h1"},
        "H2SCU": {"host": "127.0.0.1", "port": receiver, "hospital": "h2"},
        "WIDE": {"host": "127.0.0.1", "port": free_port(), "hospital": "h1", "see": "all"},
        "H3SCU": {"host": "127.0.0.1", "port": free_port(), "hospital": "h3", "see": ["h2"]},
        "LEGACY": ["127.0.0.1", free_port()],
    }
    (base / "peers.json").write_text(json.dumps(peers))
    srv = net.start_yunying(base / "data", peers=base / "peers.json")
    try:
        for aet, path in (("H1SCU", CT), ("H2SCU", MR)):
            res = run("storescu", "-aet", aet, "-aec", srv.aet, "127.0.0.1", str(srv.dimse_port), str(path))
            assert res.returncode == 0, res.stderr
        yield srv, receiver
    finally:
        srv.stop()


def studies_found(srv: net.YunyingServer, aet: str, tmp_path: Path) -> set[str]:
    """Study Instance UIDs a Study Root C-FIND by findscu (DCMTK) answers to this AE title."""
    out = tmp_path / aet
    out.mkdir()
    res = run("findscu", "-S", "-aet", aet, "-aec", srv.aet, "-X", "-od", str(out), "127.0.0.1",
              str(srv.dimse_port), "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID",
              "-k", "NumberOfStudyRelatedInstances")
    assert res.returncode == 0, res.stderr
    return {str(pydicom.dcmread(p).StudyInstanceUID) for p in out.iterdir()}


def study(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def test_c_find_sees_the_peers_hospital(server: tuple[net.YunyingServer, int], tmp_path: Path) -> None:
    srv, _ = server
    assert studies_found(srv, "H1SCU", tmp_path) == {study(CT)}
    assert studies_found(srv, "H2SCU", tmp_path) == {study(MR)}
    assert studies_found(srv, "WIDE", tmp_path) == {study(CT), study(MR)}  # "see": "all"
    assert studies_found(srv, "H3SCU", tmp_path) == {study(MR)}  # "see": ["h2"]
    assert studies_found(srv, "LEGACY", tmp_path) == set()  # the default hospital stored nothing


def test_patient_level_c_find_counts_visible_studies_only(server: tuple[net.YunyingServer, int]) -> None:
    srv, _ = server
    peer = scu.Peer("127.0.0.1", srv.dimse_port, called=srv.aet, aet="H1SCU")
    found = list(scu.find(peer, build_identifier("PATIENT", ["PatientID", "NumberOfPatientRelatedStudies"]),
                          root="patient"))
    ct = pydicom.dcmread(CT, stop_before_pixels=True)
    assert [(str(d.PatientID), int(d.NumberOfPatientRelatedStudies)) for d in found] == [(ct.PatientID, 1)]


def test_c_get_of_another_hospitals_study_sends_nothing(server: tuple[net.YunyingServer, int]) -> None:
    srv, _ = server
    for aet, own, other in (("H1SCU", CT, MR), ("H2SCU", MR, CT)):
        peer = scu.Peer("127.0.0.1", srv.dimse_port, called=srv.aet, aet=aet)
        got: list[bytes] = []
        scu.get(peer, build_identifier("STUDY", [f"StudyInstanceUID={study(other)}"]), collector(got))
        assert got == []
        result = scu.get(peer, build_identifier("STUDY", [f"StudyInstanceUID={study(own)}"]), collector(got))
        assert result.ok and len(got) == 1


def test_c_move_of_another_hospitals_study_moves_nothing(server: tuple[net.YunyingServer, int], tmp_path: Path) -> None:
    srv, receiver = server
    with dcmtk_storescp(receiver, tmp_path / "received", aet="H2SCU") as out:
        for target, expected in ((study(CT), 0), (study(MR), 1)):
            res = run("movescu", "-S", "-aet", "H2SCU", "-aec", srv.aet, "-aem", "H2SCU", "127.0.0.1",
                      str(srv.dimse_port), "-k", "QueryRetrieveLevel=STUDY",
                      "-k", f"StudyInstanceUID={target}")
            assert res.returncode == 0, res.stderr
            # storescp writes each file before its C-STORE-RSP, and movescu returns after the last
            # sub-operation's: no wait needed; the MR's count also proves the CT sent nothing
            assert len(list(out.iterdir())) == expected


def test_c_store_into_another_hospitals_study_is_refused(server: tuple[net.YunyingServer, int], tmp_path: Path) -> None:
    srv, _ = server
    intruder = pydicom.dcmread(MR)
    intruder.StudyInstanceUID = study(CT)  # h1's study, sent by h2's peer
    intruder.SOPInstanceUID = generate_uid()
    path = tmp_path / "intruder.dcm"
    intruder.save_as(path)
    res = run("storescu", "-v", "-aet", "H2SCU", "-aec", srv.aet, "127.0.0.1", str(srv.dimse_port),
              str(path))
    assert res.returncode != 0 and "Error: CannotUnderstand" in res.stderr  # DCMTK's name for 0xCxxx
    assert "refused: StudyElsewhere (0xC409)" in srv.log_path.read_text()
    assert studies_found(srv, "H2SCU", tmp_path) == {study(MR)}
    peer = scu.Peer("127.0.0.1", srv.dimse_port, called=srv.aet, aet="H1SCU")
    found = list(scu.find(peer, build_identifier("STUDY", [f"StudyInstanceUID={study(CT)}",
                                                           "NumberOfStudyRelatedInstances"])))
    assert [int(d.NumberOfStudyRelatedInstances) for d in found] == [1]  # untouched
