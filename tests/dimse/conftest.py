"""Fixtures: a real SCP on 127.0.0.1 (free port) over an archive, DCMTK tool helpers."""
from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fake_archive import FakeArchive

from dimse.server import DimseServer, start_dimse
from index.query import Query
from tests.conftest import pydicom_path
from yunying.archive import Archive
from yunying.settings import Settings

DCMTK = Path("/usr/bin")
SCU_AET = "TESTSCU"
SCP_AET = "YUNYING"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sample_file(name: str) -> Path:
    return Path(pydicom_path(name))


def run(tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool by absolute path (pynetdicom's scripts shadow the names on PATH)."""
    return subprocess.run([str(DCMTK / tool), *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"})


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    arch = Archive(tmp_path / "data")
    yield arch
    arch.close()


@pytest.fixture
def fake_archive() -> FakeArchive:
    return FakeArchive()


def stored_sops(archive: Archive) -> set[str]:
    """SOP Instance UIDs the archive holds."""
    return {str(js["00080018"]["Value"][0]) for js in archive.search(Query(level="IMAGE"))}


def stored_dataset(archive: Archive, sop: str) -> pydicom.Dataset:
    row = archive.row(sop)
    assert row is not None, sop
    return archive.read_dataset(row)


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Until a peer we started (DCMTK storescp) accepts connections: no fixed sleep (issue 10 part 9)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the peer exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


@pytest.fixture
def storescp_port() -> int:
    return free_port()


def start_scp(archive: Archive | FakeArchive, storescp_port: int, port: int = 0, aet: str = SCP_AET,
              **kw: Any) -> DimseServer:
    settings = Settings(host="127.0.0.1", dimse_port=port, aet=aet,
                        peers={SCU_AET: ("127.0.0.1", free_port()), "STORESCP": ("127.0.0.1", storescp_port)},
                        **kw)
    return start_dimse(archive, settings)


@pytest.fixture
def scp(archive: Archive, storescp_port: int) -> Iterator[DimseServer]:
    server = start_scp(archive, storescp_port)
    yield server
    server.stop()


@pytest.fixture
def pooled_scp(pooled: Archive, storescp_port: int) -> Iterator[DimseServer]:
    """An SCP over `pooled` that lends its storage associations to the ingest workers."""
    server = start_scp(pooled, storescp_port, dimse_lend_workers=True)
    yield server
    server.stop()


@contextmanager
def dcmtk_storescp(port: int, out: Path, *extra: str, aet: str = "STORESCP") -> Iterator[Path]:
    """DCMTK storescp writing what it receives into `out` (made here), stopped on leaving."""
    out.mkdir()
    proc = subprocess.Popen([str(DCMTK / "storescp"), *extra, "-aet", aet, "-od", str(out), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        yield out
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def fake_scp(fake_archive: FakeArchive, storescp_port: int) -> Iterator[DimseServer]:
    server = start_scp(fake_archive, storescp_port)
    yield server
    server.stop()


def collector(got: list[bytes]) -> Callable[[bytes], int]:
    """A C-GET store handler for dimse.scu.get: keeps each instance, answers Success."""
    def keep(raw: bytes) -> int:
        got.append(raw)
        return 0x0000
    return keep


def make_instance(path: Path, *, study: str, series: str, sop: str, patient_id: str = "P1",
                  name: str = "Doe^John", modality: str = "CT", date: str = "20240102") -> Path:
    """A copy of CT_small with the given identity, as a Part 10 file."""
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
    ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(sop)
    ds.PatientID, ds.PatientName, ds.Modality, ds.StudyDate = patient_id, name, modality, date
    ds.save_as(path, enforce_file_format=True)
    return path
