"""A throwaway Orthanc (Debian `orthanc` + `orthanc-dicomweb`) for benchmarks and tests.

Orthanc 1.10 has no HTTP bind-address option: `RemoteAccessAllowed: false` makes it refuse
every client but 127.0.0.1, and the DICOM port only answers AEs listed in `DicomModalities`
for C-FIND/C-MOVE.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.net import ServerProcess, free_port, log_tail, nodelay_env, wait_http

ORTHANC_BINARIES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
DICOMWEB_PLUGINS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so.1.7",
)
START_TIMEOUT_S = 30.0


def _first_existing(paths: tuple[str, ...]) -> str | None:
    for p in paths:
        if Path(p).exists():
            return p
    return None


def _orthanc_binary() -> str | None:
    return _first_existing(ORTHANC_BINARIES) or shutil.which("Orthanc")


def _dicomweb_plugin() -> str | None:
    found = _first_existing(DICOMWEB_PLUGINS)
    if found:
        return found
    for root in ("/usr/share/orthanc/plugins", "/usr/lib/orthanc", "/usr/lib"):
        hits = sorted(Path(root).rglob("libOrthancDicomWeb.so*")) if Path(root).is_dir() else []
        if hits:
            return str(hits[0])
    return None


def orthanc_available() -> bool:
    """True when both the Orthanc binary and its DICOMweb plugin are installed."""
    return _orthanc_binary() is not None and _dicomweb_plugin() is not None


@dataclass
class OrthancServer(ServerProcess):
    http_url: str
    dicomweb_url: str
    dimse_port: int
    aet: str
    workdir: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path = field(repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def storage_dir(self) -> Path:
        return self.workdir / "storage"



def orthanc_config(
    workdir: Path,
    http_port: int,
    dimse_port: int,
    aet: str,
    modalities: dict[str, tuple[str, int]] | None,
    plugin: str,
) -> dict[str, object]:
    """The generated orthanc.json: no auth, local only, DICOMweb at /dicom-web/."""
    return {
        "Name": f"bench-{aet}",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "storage"),
        "StorageCompression": False,
        "OverwriteInstances": True,
        "HttpPort": http_port,
        "DicomPort": dimse_port,
        "DicomAet": aet,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "DicomServerEnabled": True,
        "KeepAlive": True,
        "TcpNoDelay": True,
        "SaveJobs": False,
        "DicomCheckCalledAet": False,
        "UnknownSopClassAccepted": True,
        # Modalities are keyed by a symbolic name; ours is the AE title itself.
        "DicomModalities": {ae: [ae, host, port] for ae, (host, port) in (modalities or {}).items()},
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
    }


def start_orthanc(
    workdir: Path,
    aet: str = "ORTHANC",
    modalities: dict[str, tuple[str, int]] | None = None,
    timeout: float = START_TIMEOUT_S,
) -> OrthancServer:
    """Start Orthanc on free ports; `modalities` maps AE title -> (host, port).

    Waits until /system answers; raises RuntimeError with Orthanc's log tail otherwise.
    """
    binary, plugin = _orthanc_binary(), _dicomweb_plugin()
    if binary is None or plugin is None:
        raise RuntimeError("Orthanc or its DICOMweb plugin is not installed")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "storage").mkdir(exist_ok=True)
    http_port, dimse_port = free_port(), free_port()
    while dimse_port == http_port:
        dimse_port = free_port()
    config_path = workdir / "orthanc.json"
    config = orthanc_config(workdir, http_port, dimse_port, aet, modalities, plugin)
    config_path.write_text(json.dumps(config, indent=2))
    log_path = workdir / "orthanc.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [binary, str(config_path)], cwd=workdir, env=nodelay_env(),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    http_url = f"http://127.0.0.1:{http_port}"
    server = OrthancServer(
        http_url=http_url, dicomweb_url=f"{http_url}/dicom-web", dimse_port=dimse_port,
        aet=aet, workdir=workdir, proc=proc, log_path=log_path,
    )
    try:
        wait_http(f"{http_url}/system", proc, timeout, log_path)
    except BaseException:
        server.stop()
        raise
    return server


__all__ = ["OrthancServer", "log_tail", "orthanc_available", "start_orthanc"]
