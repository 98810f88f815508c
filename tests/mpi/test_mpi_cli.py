"""`yunying mpi rebuild` and `yunying mpi codes` on a stopped archive's data folder."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.net import REPO_ROOT
from index.model import Origin
from tests.dicomweb.helpers import make_ct, part10
from yunying.archive import Archive


def yunying(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "yunying.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=REPO_ROOT, check=False)


def test_rebuild_links_what_was_stored_before_the_index_existed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    archive = Archive(data)
    try:
        for pid, issuer in (("A1", "HIS-A"), ("B7", "HIS-B")):
            ds = make_ct(patient_id=pid, name="Wang^Fang")
            ds.IssuerOfPatientID, ds.PatientBirthDate, ds.PatientSex = issuer, "19750301", "F"
            archive.store(part10(ds), Origin("import", "test"))
    finally:
        archive.close()
    done = yunying("mpi", "rebuild", "--data", str(data))
    assert done.returncode == 0, done.stderr
    assert "new 1" in done.stdout and "auto 1" in done.stdout  # the second record joins the first
    again = yunying("mpi", "rebuild", "--data", str(data))
    assert "unchanged 2" in again.stdout
    assert "Wang" not in done.stdout + done.stderr + again.stderr


def test_codes_import_and_a_bad_file(tmp_path: Path) -> None:
    good = tmp_path / "codes.csv"
    good.write_text("hospital,local_code,standard_code\nh1,CT01,CT-CHEST\n", encoding="utf-8")
    assert "1 row(s)" in yunying("mpi", "codes", str(good), "--data", str(tmp_path / "d")).stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name\n1,2\n", encoding="utf-8")
    done = yunying("mpi", "codes", str(bad), "--data", str(tmp_path / "d"))
    assert done.returncode == 2 and "missing column" in done.stderr
