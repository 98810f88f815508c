"""Issue 10 part 5: a full disk is "out of resources" (STOW 507 + FailureReason 0xA700, C-STORE
0xA700), so senders retry later; nothing stored is lost and storing resumes when space returns.
A real file system with a size limit: a 64 MiB tmpfs (the tests run as root), unmounted after."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE

from benchmarks.net import REPO_ROOT, YunyingServer, start_yunying
from tests.dicomweb.helpers import make_ct, multipart, part10

OUT_OF_RESOURCES = 0xA700


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True, check=False)
    if done.returncode:
        pytest.fail(f"cannot mount a tmpfs (root needed): {done.stderr.decode()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def big_ct(study: str | None = None, side: int = 1400) -> pydicom.Dataset:
    ds = make_ct(study, rows=side, cols=side)  # ~4 MB of noise: no codec makes it small
    ds.PixelData = np.random.default_rng(1).integers(0, 4096, (side, side), dtype=np.uint16).tobytes()
    return ds


def fill(mount: Path, leave: int) -> Path:
    """A file taking all but `leave` bytes of the file system."""
    st = os.statvfs(mount)
    filler = mount / "filler"
    with open(filler, "wb") as fh:
        fh.truncate(0)
        left = st.f_bavail * st.f_frsize - leave
        chunk = b"\0" * (1 << 20)
        while left > 0:
            fh.write(chunk[: min(len(chunk), left)])
            left -= len(chunk)
    return filler


def stow(server: YunyingServer, ds: pydicom.Dataset) -> httpx.Response:
    body, ctype = multipart(part10(ds))
    return httpx.post(server.dicomweb_url + "/studies", content=body, timeout=60,
                      headers={**server.headers, "Content-Type": ctype})


def c_store(server: YunyingServer, ds: pydicom.Dataset) -> int:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title=server.aet)
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def test_full_disk_is_out_of_resources_and_storing_resumes(small_fs: Path) -> None:
    srv = start_yunying(small_fs / "data", peers={"MODALITY": ("127.0.0.1", 1)})
    try:
        kept = big_ct()
        assert stow(srv, kept).status_code == 200
        url = (f"{srv.dicomweb_url}/studies/{kept.StudyInstanceUID}/series/{kept.SeriesInstanceUID}"
               f"/instances/{kept.SOPInstanceUID}")
        before = httpx.get(url, headers={**srv.headers, "Accept": "application/dicom; transfer-syntax=*"}).content
        filler = fill(small_fs, leave=1 << 20)
        refused = big_ct(kept.StudyInstanceUID)
        resp = stow(srv, refused)
        assert resp.status_code == 507, resp.text
        assert resp.json()["00081198"]["Value"][0]["00081197"]["Value"] == [OUT_OF_RESOURCES]
        assert c_store(srv, refused) == OUT_OF_RESOURCES
        # nothing stored was lost, and the refused instance is not half there
        again = httpx.get(url, headers={**srv.headers, "Accept": "application/dicom; transfer-syntax=*"})
        assert again.status_code == 200 and again.content == before
        found = httpx.get(f"{srv.dicomweb_url}/studies/{kept.StudyInstanceUID}/instances", headers=srv.headers)
        assert [i["00080018"]["Value"][0] for i in found.json()] == [kept.SOPInstanceUID]
        filler.unlink()  # space returns
        assert stow(srv, refused).status_code == 200
        assert c_store(srv, big_ct(kept.StudyInstanceUID)) == 0x0000
    finally:
        srv.stop()
    check = subprocess.run([sys.executable, "-m", "yunying.cli", "check", "--data", str(small_fs / "data")],
                           capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False,
                           env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert check.returncode == 0 and "0 problem(s)" in check.stdout, check.stdout + check.stderr
