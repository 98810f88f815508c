"""Fixtures: an Orthanc peer (Debian packages) and our archive, each knowing the runner's
C-MOVE destination (CONFSCU at a free port)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.net import free_port
from benchmarks.orthanc import OrthancServer, orthanc_available, start_orthanc
from conformance.runner import DEFAULT_CALLING_AET as CALLING_AET
from tests.conftest import missing_tool


@pytest.fixture(scope="session")
def move_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory, move_port: int) -> Iterator[OrthancServer]:
    if not orthanc_available():
        missing_tool("Orthanc / orthanc-dicomweb not installed")
    srv = start_orthanc(tmp_path_factory.mktemp("orthanc"),
                        modalities={CALLING_AET: ("127.0.0.1", move_port)})
    yield srv
    srv.stop()


def write_log(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
