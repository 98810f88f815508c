"""Issue 10 part 8: operators' sharp edges in the `yunying` command and the server log."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from pydicom.uid import generate_uid

from benchmarks.net import REPO_ROOT, free_port, start_yunying
from storage import packed
from tests.dicomweb.helpers import make_ct, multipart, part10
from tests.yunying.test_cli import yunying


def snapshot(folder: Path) -> dict[str, str]:
    """Every file's path and content digest (a changed, added or removed file shows)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def stow(url: str, headers: dict[str, str], *raws: bytes) -> httpx.Response:
    body, ctype = multipart(*raws)
    return httpx.post(url + "/studies", content=body, headers={**headers, "Content-Type": ctype}, timeout=60)


def test_check_refuses_a_data_folder_that_does_not_exist(tmp_path: Path) -> None:
    typo = tmp_path / "typo"
    res = yunying("check", "--data", str(typo))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "does not exist" in res.stderr and "Traceback" not in res.stderr
    assert not typo.exists()  # no empty archive made from a typo
    (tmp_path / "empty").mkdir()
    res = yunying("check", "--data", str(tmp_path / "empty"))
    assert res.returncode == 2 and "holds no archive" in res.stderr
    assert not any((tmp_path / "empty").iterdir())


def test_check_without_repair_changes_nothing_after_an_unclean_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_yunying(data)
    try:
        assert stow(srv.dicomweb_url, srv.headers, part10(make_ct()), part10(make_ct())).status_code == 200
        srv.proc.send_signal(signal.SIGKILL)  # an unclean stop: the RUNNING marker stays
        srv.proc.wait(30)
    finally:
        srv.stop()
    before = snapshot(data)
    assert "RUNNING" in before
    res = yunying("check", "--data", str(data))
    assert "did not stop cleanly" in res.stdout, res.stdout + res.stderr
    assert snapshot(data) == before  # no recovery, no marker, no index write


def test_check_import_and_dimse_store_while_a_server_runs_say_one_sentence(tmp_path: Path) -> None:
    data = tmp_path / "data"
    src = tmp_path / "in"
    src.mkdir()
    (src / "one.dcm").write_bytes(part10(make_ct()))
    srv = start_yunying(data)
    try:
        for args in (["check", "--data", str(data)], ["check", "--repair", "--data", str(data)],
                     ["import", str(src), "--data", str(data)],
                     ["dimse", "store", "127.0.0.1", str(srv.dimse_port), "--called", srv.aet,
                      "--study", "1.2.3", "--data", str(data)]):
            res = yunying(*args)
            assert res.returncode == 2, (args, res.stdout, res.stderr)
            assert "in use by a running server" in res.stderr and "Traceback" not in res.stderr, res.stderr
    finally:
        srv.stop()


def test_import_skips_an_unreadable_file_counts_it_and_goes_on(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    study = generate_uid()
    for i in range(3):
        (src / f"img{i}.dcm").write_bytes(part10(make_ct(study, number=i)))
    (src / "img1.dcm").chmod(0)
    # root reads any file: drop the capabilities that let it, as an ordinary operator account lacks them
    cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", sys.executable, "-m", "yunying.cli",
           "import", str(src), "--data", str(tmp_path / "data")]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300, check=False,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert res.returncode == 1, res.stdout + res.stderr
    assert "2 stored" in res.stdout and "1 failed" in res.stdout and "unreadable" in res.stdout, res.stdout
    assert "Traceback" not in res.stderr


def test_import_stow_reports_what_the_server_answered(tmp_path: Path) -> None:
    from tests.dicomweb.test_device_files import with_unknown_vr

    srv = start_yunying(tmp_path / "data")
    try:
        src = tmp_path / "in"
        src.mkdir()
        (src / "good.dcm").write_bytes(part10(make_ct()))
        (src / "warned.dcm").write_bytes(with_unknown_vr(make_ct()))  # 202, stored with a warning
        truncated = part10(make_ct())
        (src / "bad.dcm").write_bytes(truncated[:len(truncated) // 2])  # refused
        env = {"YUNYING_API_KEY": srv.api_key}
        res = yunying("import", str(src), "--stow", srv.dicomweb_url, env=env)
        assert res.returncode == 1 and "2 stored" in res.stdout and "1 failed" in res.stdout, res.stdout + res.stderr
        res = yunying("import", str(src), "--stow", srv.dicomweb_url, env={"YUNYING_API_KEY": "wrong"})
        assert "0 stored" in res.stdout and "3 failed" in res.stdout and "HTTP 401" in res.stdout, res.stdout
    finally:
        srv.stop()


def test_banner_says_dimse_is_disabled_on_port_0(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:  # a file, not a pipe: a pipe nobody drains would block the server
        proc = subprocess.Popen([sys.executable, "-m", "yunying.cli", "serve", "--data", str(tmp_path / "data"),
                                 "--http-port", str(port), "--dimse-port", "0"], cwd=REPO_ROOT,
                                stdout=subprocess.DEVNULL, stderr=out, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        deadline = time.monotonic() + 60
        banner: list[str] = []
        while time.monotonic() < deadline and not banner:
            assert proc.poll() is None, log.read_text()
            banner = [line for line in log.read_text().splitlines() if "DICOMweb on" in line]
            time.sleep(0.1)
        assert banner and "DIMSE disabled" in banner[0] and ":0" not in banner[0], banner
    finally:
        proc.terminate()
        proc.wait(60)


def test_an_unexpected_http_error_is_logged_without_values(tmp_path: Path) -> None:
    """A record damaged on disk whose error message quotes a value: the log gets the summary only."""
    srv = start_yunying(tmp_path / "data")
    try:
        ds = make_ct(name="Doe^Johnathan")
        assert stow(srv.dicomweb_url, srv.headers, part10(ds)).status_code == 200
        [version] = list((srv.data_dir / "store" / "objects").glob("*/*/*"))  # small: packed
        parts = {name: bytes(m) for name, m in packed.read_members(version).items()}
        doc = json.loads(parts["record.json"])
        doc["origin"] = {"Doe^Johnathan": "x"}  # Origin(**...) raises a TypeError naming the key
        version.write_bytes(packed.pack({**parts, "record.json": json.dumps(doc).encode()}))
        url = (f"{srv.dicomweb_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
               f"/instances/{ds.SOPInstanceUID}/rendered")
        resp = httpx.get(url, headers=srv.headers, timeout=60)
        assert resp.status_code == 500 and resp.json()["error"].startswith("internal error")
        # the 500 leaves through the same outermost layer as every answer (dicomweb/edge.py)
        assert resp.headers["x-content-type-options"] == "nosniff"
    finally:
        srv.stop()
    log = srv.log_path.read_text()
    assert "unexpected error on GET" in log and "TypeError at " in log
    assert "Johnathan" not in log and "Traceback" not in log
