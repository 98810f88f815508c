"""C-FIND by person: a Patient Root or Study Root C-FIND naming one PatientID and its
IssuerOfPatientID answers the studies of every identifier the master index links to that person,
for a calling AE whose peers entry says "person_matching"; DCMTK findscu and pynetdicom as SCUs.
Other AEs, wildcards and unknown patients match as before; a person never widens a scope."""
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from benchmarks.net import YunyingServer, start_yunying
from tests.conftest import missing_tool
from tests.dicomweb.helpers import make_ct
from tests.routing.test_routing import c_store
from yunying.records import idcard

ID17 = "32010219750301002"
ID_NUMBER = ID17 + idcard.check_character(ID17)
FINDSCU = Path("/usr/bin/findscu")


def patient(issuer: str, pid: str, name: str) -> Dataset:
    ds = make_ct(patient_id=pid, name=name, charset="ISO_IR 192")
    ds.IssuerOfPatientID, ds.PatientBirthDate, ds.PatientSex = issuer, "19750301", "F"
    item = Dataset()
    item.PatientID, item.TypeOfPatientID = ID_NUMBER, "TEXT"
    ds.OtherPatientIDsSequence = [item]
    return ds


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    root = tmp_path_factory.mktemp("cfind-person")
    peers = root / "peers.json"
    peers.write_text(json.dumps({
        "H1": {"host": "127.0.0.1", "port": 11112},  # modalities of the default hospital and h2
        "H2": {"host": "127.0.0.1", "port": 11113, "hospital": "h2"},
        "RIS": {"host": "127.0.0.1", "port": 11114, "see": "all", "person_matching": True},
        "RIS1": {"host": "127.0.0.1", "port": 11115, "person_matching": True},  # the default hospital only
        "PLAIN": {"host": "127.0.0.1", "port": 11116, "see": "all"},
    }))
    s = start_yunying(root / "data", peers=peers)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def world(srv: YunyingServer) -> dict[str, str]:
    """One woman: P1 at HOSP1 (default hospital, two studies), X77 at HOSP2 (h2); one stranger."""
    mine = [patient("HOSP1", "P1", "王芳"), patient("HOSP1", "P1", "王芳"), patient("HOSP2", "X77", "王芳")]
    c_store(srv, mine[:2], calling="H1")
    c_store(srv, mine[2:], calling="H2")
    c_store(srv, [make_ct(patient_id="S5", name="Other^One")], calling="H1")
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=srv.http_url, headers=srv.headers) as c:
        while True:
            found = {i["patient_id"]: i["person"] for i in c.get("/api/mpi/identities").json()}
            if found.get("P1") and found.get("P1") == found.get("X77") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert found["P1"] == found["X77"], found
    return {"P1": mine[0].StudyInstanceUID, "P1b": mine[1].StudyInstanceUID, "X77": mine[2].StudyInstanceUID}


def find(srv: YunyingServer, calling: str, keys: dict[str, str], model: str = StudyRootQueryRetrieveInformationModelFind,
         other_ids: bool = False) -> list[Dataset]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", srv.dimse_port, ae_title=srv.aet)
    assert assoc.is_established
    ds = Dataset()
    for k, v in {"StudyInstanceUID": "", "PatientID": "", "IssuerOfPatientID": "", **keys}.items():
        setattr(ds, k, v)
    if other_ids:
        ds.OtherPatientIDsSequence = []
    out: list[Dataset] = []
    try:
        for st, rsp in assoc.send_c_find(ds, model):
            assert st is not None and st.Status in (0x0000, 0xFF00, 0xFF01), st
            if st.Status != 0x0000 and rsp is not None:
                out.append(rsp)
    finally:
        assoc.release()
    return out


def pids(found: list[Dataset]) -> list[str]:
    return sorted(str(d.PatientID) for d in found)


def test_one_id_and_issuer_finds_every_linked_ids_studies(srv: YunyingServer, world: dict[str, str]) -> None:
    found = find(srv, "RIS", {"QueryRetrieveLevel": "STUDY", "PatientID": "P1", "IssuerOfPatientID": "HOSP1"},
                 other_ids=True)
    assert pids(found) == ["P1", "P1", "X77"]  # each study answers with its own identifier
    assert {str(d.StudyInstanceUID) for d in found} == set(world.values())
    x77 = next(d for d in found if d.PatientID == "X77")
    assert x77.IssuerOfPatientID == "HOSP2"
    assert [(i.PatientID, i.IssuerOfPatientID) for i in x77.OtherPatientIDsSequence] == [("P1", "HOSP1")]
    # from the other side, Patient Root, and at SERIES level
    found = find(srv, "RIS", {"QueryRetrieveLevel": "STUDY", "PatientID": "X77", "IssuerOfPatientID": "HOSP2"},
                 model=PatientRootQueryRetrieveInformationModelFind)
    assert pids(found) == ["P1", "P1", "X77"]
    # hierarchical Patient Root SERIES level: the person's patient above another ID's study
    keys = {"QueryRetrieveLevel": "SERIES", "PatientID": "P1", "IssuerOfPatientID": "HOSP1",
            "StudyInstanceUID": world["X77"], "SeriesInstanceUID": "", "Modality": ""}
    series = find(srv, "RIS", keys, model=PatientRootQueryRetrieveInformationModelFind)
    assert len(series) == 1 and series[0].Modality == "CT" and series[0].StudyInstanceUID == world["X77"]
    assert find(srv, "PLAIN", keys, model=PatientRootQueryRetrieveInformationModelFind) == []


def test_without_the_setting_or_beyond_the_scope_nothing_widens(srv: YunyingServer, world: dict[str, str]) -> None:
    keys = {"QueryRetrieveLevel": "STUDY", "PatientID": "P1", "IssuerOfPatientID": "HOSP1"}
    assert pids(find(srv, "PLAIN", keys)) == ["P1", "P1"]  # no person matching for this AE
    assert pids(find(srv, "RIS1", keys)) == ["P1", "P1"]  # h2's study stays out of its scope
    assert find(srv, "RIS1", {**keys, "PatientID": "X77", "IssuerOfPatientID": "HOSP2"}) == []
    # a wildcard or a missing issuer is an ordinary match; an unknown patient matches nothing
    assert pids(find(srv, "RIS", {**keys, "PatientID": "P*"})) == ["P1", "P1"]
    assert pids(find(srv, "RIS", {"QueryRetrieveLevel": "STUDY", "PatientID": "P1"})) == ["P1", "P1"]
    assert find(srv, "RIS", {**keys, "PatientID": "NOBODY"}) == []
    assert pids(find(srv, "RIS", {**keys, "PatientID": "S5", "IssuerOfPatientID": ""})) == ["S5"]
    # other keys still match: one study of the person
    one = find(srv, "RIS", {**keys, "StudyInstanceUID": world["X77"]})
    assert pids(one) == ["X77"]


def test_dcmtk_findscu_by_person(srv: YunyingServer, world: dict[str, str], tmp_path: Path) -> None:
    if not FINDSCU.exists():
        missing_tool("DCMTK findscu not installed")
    out = tmp_path / "rsp"
    out.mkdir()
    args = [str(FINDSCU), "-P", "-X", "-od", str(out), "-aet", "RIS", "-aec", srv.aet, "127.0.0.1",
            str(srv.dimse_port), "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=X77",
            "-k", "IssuerOfPatientID=HOSP2", "-k", "StudyInstanceUID", "-k", "PatientName"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    found = [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    assert sorted(str(d.PatientID) for d in found) == ["P1", "P1", "X77"]
    assert {str(d.StudyInstanceUID) for d in found} == set(world.values())
    assert {str(d.PatientName) for d in found} == {"王芳"}
    log = srv.log_path.read_text(errors="replace")
    assert "X77" not in log and "王芳" not in log and ID_NUMBER not in log


def test_the_conformance_statement_describes_it(srv: YunyingServer) -> None:
    text = httpx.get(srv.dicomweb_url + "/conformance", headers=srv.headers).text
    assert "3.5 C-FIND by person" in text and "IssuerOfPatientID" in text
    assert "RIS" in text and "C-FIND by person (3.5)" in text
    assert text.count("C-FIND by person (3.5)") == 2  # RIS and RIS1, not PLAIN, H1, H2


def test_a_bad_person_matching_value_is_a_setting_error() -> None:
    from yunying.settings import SettingError, load_settings

    with pytest.raises(SettingError, match="RIS"):
        load_settings(environ={"YUNYING_PEERS": json.dumps({"RIS": {"host": "h", "port": 104, "person_matching": "yes"}})})
    ok = load_settings(environ={"YUNYING_PEERS": json.dumps({"RIS": {"host": "h", "port": 104, "person_matching": True}})})
    assert ok.peers["RIS"].person_matching is True  # type: ignore[attr-defined]
