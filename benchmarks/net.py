"""Free ports and a launcher for a throwaway Yunying server (benchmarks and tests)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 90.0  # a cold start on a 2-core CI machine loaded by other tests' servers can pass 30 s
_KEYS: dict[str, str] = {}  # origin ("http://127.0.0.1:port") -> API key of a server this process started


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def auth_headers(url: str) -> dict[str, str]:
    """The Authorization header for a URL of a Yunying server this process started ({} otherwise)."""
    key = _KEYS.get(origin(url))
    return {"Authorization": f"Bearer {key}"} if key else {}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Poll `url` until it answers < 500; raise RuntimeError with the log tail otherwise."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {proc.returncode} before answering {url}\n{log_tail(log)}"
                )
            try:
                if client.get(url).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer {url} within {timeout:.0f} s\n{log_tail(log)}")


def log_tail(log: Path, lines: int = 40) -> str:
    """The last lines of a server log, for error messages."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def peak_rss_bytes(pid: int) -> int | None:
    """VmHWM of a live process, in bytes (None when unavailable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def nodelay_env() -> dict[str, str]:
    """The environment with TCP_NODELAY=1: DCMTK and Orthanc stall ~40 ms per PDU without it."""
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    return env


def bytecode_env(env: dict[str, str]) -> dict[str, str]:
    """`env` letting a server keep compiled bytecode outside the checkout.

    With PYTHONDONTWRITEBYTECODE (as in CI and here) every start compiled the ~250 modules
    of the repository again, in the server and in its forkserver: ~1.2 s of CPU per start,
    paid by every test module. The bytecode goes to a cache folder of its own instead, so
    the checkout stays as clean as the variable meant it to."""
    if env.get("PYTHONDONTWRITEBYTECODE") and not env.get("PYTHONPYCACHEPREFIX"):
        env = dict(env)
        del env["PYTHONDONTWRITEBYTECODE"]
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), f"yunying-pycache-{os.getuid()}")
    return env


def yunying_cli_available() -> bool:
    """True when the `yunying.cli` module exists in this checkout."""
    return (REPO_ROOT / "yunying" / "cli.py").exists()


class ServerProcess:
    """A server we started as a subprocess: stop() it, or use it as a context manager."""

    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class YunyingServer(ServerProcess):
    http_url: str
    dicomweb_url: str
    dimse_port: int
    aet: str
    data_dir: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path = field(repr=False)
    api_key: str = field(default="", repr=False)  # provisioned through YUNYING_API_KEY (issue 11)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def headers(self) -> dict[str, str]:
        """What every HTTP request of a test or benchmark sends: the provisioned API key."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}



def start_yunying(
    data_dir: Path,
    *,
    aet: str = "YUNYING",
    peers: Path | dict[str, tuple[str, int]] | None = None,
    http_port: int | None = None,
    dimse_port: int | None = None,
    log_path: Path | None = None,
    timeout: float = START_TIMEOUT_S,
    api_key: str | None = None,
    repo_root: Path = REPO_ROOT,
) -> YunyingServer:
    """Start `python -m yunying.cli serve` on free ports; wait until QIDO answers.

    `peers` is a peers file or a mapping AE title -> (host, port), written as
    {"AET": ["host", port]} next to the data directory.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    http_port = http_port or free_port()
    dimse_port = dimse_port or free_port()
    log_path = log_path or data_dir.parent / f"{data_dir.name}.yunying.log"
    cmd = [
        sys.executable, "-m", "yunying.cli", "serve",
        "--data", str(data_dir),
        "--host", "127.0.0.1",
        "--http-port", str(http_port),
        "--dimse-port", str(dimse_port),
        "--aet", aet,
    ]
    if isinstance(peers, dict):
        peers_file = data_dir.parent / f"{data_dir.name}.peers.json"
        peers_file.write_text(json.dumps({ae: [h, p] for ae, (h, p) in peers.items()}))
        peers = peers_file
    if peers is not None:
        cmd += ["--peers", str(peers)]
    env = bytecode_env(nodelay_env())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root), env.get("PYTHONPATH")]))
    # a full-scope system key of the default hospital, so harnesses need no login (issue 11 part 6)
    api_key = api_key if api_key is not None else env.get("YUNYING_API_KEY") or "yk_test_" + secrets.token_urlsafe(24)
    env["YUNYING_API_KEY"] = api_key
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, cwd=repo_root, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    http_url = f"http://127.0.0.1:{http_port}"
    server = YunyingServer(
        http_url=http_url, dicomweb_url=f"{http_url}/dicomweb", dimse_port=dimse_port,
        aet=aet, data_dir=data_dir, proc=proc, log_path=log_path, api_key=api_key,
    )
    _KEYS[origin(http_url)] = api_key
    try:
        wait_http(f"{server.dicomweb_url}/studies", proc, timeout, log_path)
    except BaseException:
        server.stop()
        raise
    return server
