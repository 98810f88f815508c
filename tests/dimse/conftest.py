"""Fixtures: a real SCP on 127.0.0.1 (free port) over an archive, DCMTK tool helpers."""
from __future__ import annotations

import socket
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from fake_archive import FakeArchive

DCMTK = Path("/usr/bin")
SCU_AET = "TESTSCU"
SCP_AET = "YUNYING"


def _install_parse_stub() -> None:
    """index/parse is being written elsewhere; until it lands, a minimal stand-in (tests only)."""
    try:
        import index.parse  # noqa: F401
        return
    except ImportError:
        pass
    from index.query import Match

    class InvalidQueryValue(ValueError):
        def __init__(self, tag: str, reason: str) -> None:
            super().__init__(reason)
            self.tag, self.reason = tag, reason

    def parse_match(tag: str, raw: str, *, list_sep: str = ",") -> Match:
        if raw in ("", "*"):
            return Match(tag, "universal")
        if tag in ("00080020", "00080030", "00100030") and "-" in raw:
            lo, hi = raw.split("-", 1)
            if any(not p.isdigit() for p in (lo + hi).replace(".", "")):
                raise InvalidQueryValue(tag, f"bad range {raw!r}")
            return Match(tag, "range", (lo, hi))
        if tag in ("00080020",) and not raw.isdigit():
            raise InvalidQueryValue(tag, f"bad date {raw!r}")
        if list_sep in raw:
            return Match(tag, "list", tuple(raw.split(list_sep)))
        if "*" in raw or "?" in raw:
            return Match(tag, "wildcard", (raw,))
        return Match(tag, "single", (raw,))

    def supported_match_tags(level: str) -> set[str]:
        return {"00100010", "00100020", "00100021", "00100030", "00080020", "00080030", "00080050",
                "0020000D", "00200010", "00080061", "00080060", "0020000E", "00200011", "00080018",
                "00200013", "00080016"}

    parse = types.ModuleType("index.parse")
    parse.parse_match = parse_match  # type: ignore[attr-defined]
    parse.supported_match_tags = supported_match_tags  # type: ignore[attr-defined]
    errors = types.ModuleType("index.errors")
    errors.InvalidQueryValue = InvalidQueryValue  # type: ignore[attr-defined]
    sys.modules.setdefault("index.parse", parse)
    try:
        import index.errors  # noqa: F401
    except ImportError:
        sys.modules["index.errors"] = errors


_install_parse_stub()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sample_file(name: str) -> Path:
    return Path(get_testdata_file(name))  # type: ignore[arg-type]


def run(tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool by absolute path (pynetdicom's scripts shadow the names on PATH)."""
    return subprocess.run([str(DCMTK / tool), *args], capture_output=True, text=True, timeout=timeout,
                          env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"})


@pytest.fixture
def archive() -> FakeArchive:
    return FakeArchive()


@pytest.fixture
def storescp_port() -> int:
    return free_port()


@pytest.fixture
def scp(archive: FakeArchive, storescp_port: int) -> Iterator[object]:
    from dimse.server import start_dimse
    from yunying.settings import Settings

    settings = Settings(host="127.0.0.1", dimse_port=0, aet=SCP_AET,
                        peers={SCU_AET: ("127.0.0.1", free_port()), "STORESCP": ("127.0.0.1", storescp_port)})
    server = start_dimse(archive, settings)  # type: ignore[arg-type]
    yield server
    server.stop()


def make_instance(path: Path, *, study: str, series: str, sop: str, patient_id: str = "P1",
                  name: str = "Doe^John", modality: str = "CT", date: str = "20240102") -> Path:
    """A copy of CT_small with the given identity, as a Part 10 file."""
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.PatientID, ds.PatientName, ds.Modality, ds.StudyDate = patient_id, name, modality, date
    ds.save_as(path, enforce_file_format=True)
    return path
