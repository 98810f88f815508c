"""The server's start-up imports no heavy optional library (issue 9 part 5: start-up time and memory).

PDF pages, QR codes, ZIP encryption, video, SR writing, spreadsheets, SOAP and trio (through an
HTTP client made at start) are imported where they are used, the first time (pypinyin, 11 MiB,
not at all); a module-level
import of one of them on the start path costs every server start its time and keeps its memory.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.net import REPO_ROOT, free_port

HEAVY = ("pypdfium2", "zeep", "av", "highdicom", "openpyxl", "pyzipper", "segno", "barcode", "trio",
         "reportlab",
         "pypinyin")  # never imported by the server: the master index reads yunying/mpi/pinyin.txt

# `yunying serve` up to the moment it would start serving, then the names of what it imported
SCRIPT = """
import json, sys
import uvicorn

class Ready(Exception):
    pass

def run(self, *args, **kwargs):
    raise Ready

uvicorn.Server.run = run
from yunying import cli
try:
    cli.main(sys.argv[1:])
except Ready:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def test_serve_start_imports_no_heavy_optional_library(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "YUNYING_API_KEY": "yk_test_" + "s" * 32}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, "serve", "--data", str(tmp_path / "data"), "--host", "127.0.0.1",
         "--http-port", str(free_port()), "--dimse-port", str(free_port())],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    modules = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "dicomweb.app" in modules and "dimse.server" in modules  # the start path did run
    assert "yunying.mpi.scoring" in modules  # the master index's scoring: its pinyin without pypinyin
    assert sorted({m.split(".")[0] for m in modules} & set(HEAVY)) == []
