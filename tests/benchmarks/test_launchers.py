"""The throwaway-server launchers the benchmark and other test suites import."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from benchmarks.net import free_port, peak_rss_bytes, start_yunying, yunying_cli_available
from benchmarks.orthanc import orthanc_available, start_orthanc
from tests import web
from tests.conftest import missing_tool


@pytest.fixture
def orthanc_installed() -> None:
    if not orthanc_available():
        missing_tool("Orthanc / orthanc-dicomweb not installed")


needs_orthanc = pytest.mark.usefixtures("orthanc_installed")


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


@needs_orthanc
def test_orthanc_starts_with_dicomweb_and_modalities(tmp_path: Path) -> None:
    with start_orthanc(tmp_path, aet="ORTHANCT", modalities={"BENCHSCU": ("127.0.0.1", 11112)}) as o:
        system = httpx.get(f"{o.http_url}/system").json()
        assert system["DicomAet"] == "ORTHANCT"
        assert system["DicomPort"] == o.dimse_port
        assert httpx.get(f"{o.dicomweb_url}/studies").status_code in (200, 204)
        assert httpx.get(f"{o.http_url}/modalities").json() == ["BENCHSCU"]
        assert peak_rss_bytes(o.pid)
    assert o.proc.poll() is not None


@needs_orthanc
def test_orthanc_accepts_c_echo_from_listed_ae(tmp_path: Path) -> None:
    with start_orthanc(tmp_path, modalities={"BENCHSCU": ("127.0.0.1", 11112)}) as o:
        done = subprocess.run(
            ["/usr/bin/echoscu", "-aet", "BENCHSCU", "-aec", o.aet, "127.0.0.1", str(o.dimse_port)],
            capture_output=True, timeout=30, check=False,
        )
        assert done.returncode == 0, done.stderr


@needs_orthanc
def test_orthanc_start_failure_reports_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import orthanc

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = iter([taken, free_port()])
        monkeypatch.setattr(orthanc, "free_port", lambda: next(ports))
        with pytest.raises(RuntimeError, match="exited|did not answer"):
            orthanc.start_orthanc(tmp_path, timeout=20).stop()  # stop() only if it wrongly started


def test_yunying_starts_and_answers_qido(tmp_path: Path) -> None:
    assert yunying_cli_available()  # a failure to start is a failure, not a skip
    with start_yunying(tmp_path / "data") as y:
        assert y.dicomweb_url.endswith("/dicomweb")
        assert web.get(f"{y.dicomweb_url}/studies").status_code in (200, 204)
        with socket.create_connection(("127.0.0.1", y.dimse_port), timeout=5):
            pass
    assert y.proc.poll() is not None
