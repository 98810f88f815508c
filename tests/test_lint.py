"""The code is ruff- and mypy-clean (issue 10 part 9): the test command runs both."""
from __future__ import annotations

import shutil
import subprocess
import sys

from benchmarks.net import REPO_ROOT
from tests.conftest import missing_tool

PACKAGES = ["yunying", "dicomweb", "dimse", "index", "storage", "frontends"]
CHECKED = [*PACKAGES, "tests", "benchmarks", "conformance"]  # the tests are code too (issue 10 part 9)


def test_ruff_finds_nothing() -> None:
    if shutil.which("ruff") is None:
        missing_tool("ruff is not installed (test extras)")
    done = subprocess.run(["ruff", "check", "--output-format", "concise", "."], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_mypy_finds_nothing() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary",  # settings: pyproject.toml
                           *CHECKED], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False)
    if "No module named mypy" in done.stderr:
        missing_tool("mypy is not installed (test extras)")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
