"""Issue 10 part 3: C-FIND decodes query values by the identifier's Specific Character Set
(ISO_IR 192, GB18030, ISO 2022 IR 58 and IR 87), with DCMTK findscu and pynetdicom."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pynetdicom import AE

from benchmarks.net import YunyingServer, start_yunying
from tests.conftest import missing_tool
from tests.dicomweb.helpers import make_ct, multipart, part10

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
FINDSCU = Path("/usr/bin/findscu")
IR_58 = ["", "ISO 2022 IR 58"]
WANG_IR_58 = b"Wang^XiaoDong=\x1b$)A\xcd\xf5^\x1b$)A\xd0\xa1\xb6\xab"  # PS3.5 H.3.2: G1 designated per group


def _raw_name(ds: pydicom.Dataset, value: bytes) -> pydicom.Dataset:
    ds.add(DataElement(0x00100010, "PN", value))  # bytes go out exactly as given
    return ds


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YunyingServer]:
    srv = start_yunying(tmp_path_factory.mktemp("charsets") / "data", peers={"FINDSCU": ("127.0.0.1", 1)})
    stored = [
        make_ct(name="Müller^Jürgen", patient_id="M1", charset="ISO_IR 192"),
        make_ct(name="Müller^Jürgen", patient_id="M2", charset="ISO_IR 100"),
        make_ct(name="Müller^Hans", patient_id="M3", charset="ISO_IR 192"),
        make_ct(name="Muller^Jurgen", patient_id="M4"),
        make_ct(name="Wang^XiaoDong", ideographic="王^小东", patient_id="W1", charset="GB18030"),
        _raw_name(make_ct(patient_id="W2", charset=IR_58), WANG_IR_58),
        make_ct(name="Wang^Xiaoming", ideographic="王^小明", patient_id="W3", charset="ISO_IR 192"),
        make_ct(name="Yamada^Tarou", ideographic="山田^太郎", patient_id="J1", charset=["", "ISO 2022 IR 87"]),
        make_ct(name="Yamada^Hanako", ideographic="山田^花子", patient_id="J2", charset=["", "ISO 2022 IR 87"]),
    ]
    body, ctype = multipart(*(part10(d) for d in stored))
    resp = httpx.post(srv.dicomweb_url + "/studies", content=body, timeout=60,
                      headers={**srv.headers, "Content-Type": ctype})
    assert resp.status_code == 200, resp.text
    yield srv
    srv.stop()


def query(charset: str | list[str] | None, name: str | bytes) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    if charset is not None:
        ds.SpecificCharacterSet = charset
    if isinstance(name, bytes):
        _raw_name(ds, name)
    else:
        ds.PatientName = name  # pydicom encodes it in the data set's character set
    ds.PatientID = ""
    return ds


def pynetdicom_find(server: YunyingServer, identifier: Dataset) -> set[str]:
    ae = AE(ae_title="FINDSCU")
    ae.add_requested_context(STUDY_ROOT_FIND)
    assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title=server.aet)
    assert assoc.is_established
    try:
        found = list(assoc.send_c_find(identifier, STUDY_ROOT_FIND))
    finally:
        assoc.release()
    assert found[-1][0].Status == 0x0000, found[-1][0]
    return {str(getattr(ds, "PatientID", None)) for status, ds in found if status.Status == 0xFF00}


def findscu(server: YunyingServer, tmp: Path, identifier: Dataset | None = None, *keys: str) -> set[str]:
    """DCMTK findscu with a query file (its bytes sent as written) and/or -k keys."""
    if not FINDSCU.exists():
        missing_tool("DCMTK findscu is not installed")
    args = [str(FINDSCU), "-S", "-aet", "FINDSCU", "-aec", server.aet, "127.0.0.1", str(server.dimse_port)]
    for key in keys:
        args += ["-k", key]
    if identifier is not None:
        path = tmp / "query.dcm"
        pydicom.dcmwrite(path, identifier, implicit_vr=True, little_endian=True)
        args.append(str(path))
    done = subprocess.run(args, capture_output=True, timeout=60, check=False, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    out = (done.stdout + done.stderr).decode("utf-8", "replace")
    assert done.returncode == 0, out
    return {line.split("[", 1)[1].split("]", 1)[0] for line in out.splitlines() if "(0010,0020)" in line
            and "[" in line and line.split("[", 1)[1].split("]", 1)[0]}


@pytest.mark.parametrize("charset", ["ISO_IR 192", "ISO_IR 100"])
def test_umlauts_match_the_two_patients_so_named(archive: YunyingServer, charset: str) -> None:
    assert pynetdicom_find(archive, query(charset, "Müller^Jürgen")) == {"M1", "M2"}
    assert pynetdicom_find(archive, query(charset, "Mü*")) == {"M1", "M2", "M3"}


def test_findscu_utf8_keys(archive: YunyingServer, tmp_path: Path) -> None:
    got = findscu(archive, tmp_path, None, "QueryRetrieveLevel=STUDY", "SpecificCharacterSet=ISO_IR 192",
                  "PatientName=Müller^Jürgen", "PatientID")
    assert got == {"M1", "M2"}


def test_gb18030_query(archive: YunyingServer, tmp_path: Path) -> None:
    identifier = query("GB18030", "王^小东".encode("gb18030"))
    assert pynetdicom_find(archive, identifier) == {"W1", "W2"}
    assert findscu(archive, tmp_path, identifier) == {"W1", "W2"}
    assert pynetdicom_find(archive, query("GB18030", "王*".encode("gb18030"))) == {"W1", "W2", "W3"}


def test_iso2022_ir58_query_and_stored_name(archive: YunyingServer, tmp_path: Path) -> None:
    identifier = query(IR_58, WANG_IR_58)
    assert pynetdicom_find(archive, identifier) == {"W1", "W2"}
    assert findscu(archive, tmp_path, identifier) == {"W1", "W2"}
    ideographic_only = query(IR_58, b"\x1b$)A\xcd\xf5^\x1b$)A\xd0\xa1\xb6\xab")
    assert pynetdicom_find(archive, ideographic_only) == {"W1", "W2"}
    # the stored IR 58 name is decoded at ingest too: QIDO gives it back as UTF-8
    [study] = httpx.get(archive.dicomweb_url + "/studies", params={"PatientID": "W2"}, headers=archive.headers).json()
    assert study["00100010"]["Value"] == [{"Alphabetic": "Wang^XiaoDong", "Ideographic": "王^小东"}]


def test_iso2022_ir87_query(archive: YunyingServer, tmp_path: Path) -> None:
    identifier = query(["", "ISO 2022 IR 87"], "山田^太郎")
    assert pynetdicom_find(archive, identifier) == {"J1"}
    assert findscu(archive, tmp_path, identifier) == {"J1"}
    assert pynetdicom_find(archive, query(["", "ISO 2022 IR 87"], "山田*")) == {"J1", "J2"}
