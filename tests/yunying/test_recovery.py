"""Design rule 2: a crash mid-ingest leaves no indexed instance without bytes; what was stored is recovered."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pydicom.uid import generate_uid

from benchmarks.net import REPO_ROOT, start_yunying
from tests import web
from tests.dicomweb.helpers import make_ct, part10
from tests.yunying.test_cli import yunying


def test_kill_9_during_import_then_restart_recovers_and_check_is_clean(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    study = generate_uid()
    for i in range(400):
        (src / f"{i:04d}.dcm").write_bytes(part10(make_ct(study, number=i, rows=64, cols=64)))
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "yunying.cli", "import", str(src), "--data", str(data)],
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    objects = data / "store" / "objects"
    while time.monotonic() < deadline and len(list(objects.glob("*/*/*"))) < 50:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    # complete: a folder with its record, or a packed version (whole once it exists)
    complete = [p for p in objects.glob("*/*/*") if (p / "record.json").exists() or p.is_file()]
    # an interrupted write: a version folder without its completion record
    half = objects / study / "1.2.3" / "1.2.3.4.0000000000000000"
    half.mkdir(parents=True)
    (half / "header.dcm").write_bytes(b"partial")
    assert (data / "RUNNING").exists()
    srv = start_yunying(data)
    try:
        got = web.get(f"{srv.dicomweb_url}/studies/{study}/instances", timeout=60).json()
        assert len(got) == len(complete) and len(got) >= 40
    finally:
        srv.stop()
    assert not half.exists()
    assert not (data / "RUNNING").exists()
    res = yunying("check", "--data", str(data))
    assert res.returncode == 0, res.stdout
