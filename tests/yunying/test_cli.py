"""The `yunying` command: import, check, settings errors and graceful shutdown, run as a user would."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from pydicom.uid import generate_uid

from benchmarks.net import REPO_ROOT, START_TIMEOUT_S, free_port, start_yunying
from tests import web
from tests.conftest import pydicom_path
from tests.dicomweb.helpers import make_ct, multipart, part10


def yunying(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "yunying.cli", *args], check=False, capture_output=True, text=True,
                          env=full_env, timeout=300, cwd=REPO_ROOT)


def test_import_folder_recursively_skips_non_dicom_and_is_idempotent(tmp_path: Path) -> None:
    src = tmp_path / "in" / "nested" / "deeper"
    src.mkdir(parents=True)
    study = generate_uid()
    for i in range(5):
        (src / f"img{i}.dcm").write_bytes(part10(make_ct(study, number=i)))
    (src.parent / "CT_small.dcm").write_bytes(Path(pydicom_path("CT_small.dcm")).read_bytes())
    (src / "notes.txt").write_text("not an image")
    (src / "DICOMDIR.bak").write_bytes(b"\0" * 300)
    data = tmp_path / "data"
    first = yunying("import", str(tmp_path / "in"), "--data", str(data))
    assert first.returncode == 0, first.stderr
    assert "6 stored" in first.stdout and "2 skipped (not DICOM)" in first.stdout
    again = yunying("import", str(tmp_path / "in"), "--data", str(data))
    assert again.returncode == 0 and "0 stored" in again.stdout and "6 already stored" in again.stdout
    srv = start_yunying(data)
    try:
        got = web.get(f"{srv.dicomweb_url}/studies/{study}/instances").json()
        assert len(got) == 5
    finally:
        srv.stop()


def test_import_reports_broken_dicom_and_fails(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "truncated.dcm").write_bytes(Path(pydicom_path("MR_truncated.dcm")).read_bytes())
    res = yunying("import", str(src), "--data", str(tmp_path / "data"))
    assert res.returncode == 1
    assert "1 failed" in res.stdout and "PixelData holds" in res.stdout


def test_import_into_a_running_server_points_to_stow(tmp_path: Path) -> None:
    srv = start_yunying(tmp_path / "data")
    try:
        f = tmp_path / "a.dcm"
        f.write_bytes(part10(make_ct()))
        res = yunying("import", str(f), "--data", str(tmp_path / "data"))
        assert res.returncode == 2 and "--stow" in res.stderr
        res = yunying("import", str(f), "--stow", srv.dicomweb_url, env={"YUNYING_API_KEY": srv.api_key})
        assert res.returncode == 0 and "1 stored" in res.stdout
    finally:
        srv.stop()


def test_check_finds_and_repairs_orphans_and_missing_bytes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.dcm").write_bytes(part10(make_ct(number=i)))
    assert yunying("import", str(src), "--data", str(data)).returncode == 0
    assert yunying("check", "--data", str(data)).returncode == 0
    versions = sorted((data / "store" / "objects").glob("*/*/*"))  # small: packed files
    assert len(versions) == 3
    orphan = versions[0].parent / "1.2.3.4.deadbeef"
    orphan.mkdir()
    (orphan / "header.dcm").write_bytes(b"x")  # an interrupted write: no completion record
    versions[1].unlink()  # an indexed instance whose bytes vanished
    res = yunying("check", "--data", str(data))
    assert res.returncode == 1
    assert "not indexed" in res.stdout and "missing bytes" in res.stdout
    res = yunying("check", "--data", str(data), "--repair")
    assert res.returncode == 0 and "1 incomplete or superseded version(s) removed" in res.stdout
    assert "1 index row(s) without bytes dropped" in res.stdout
    assert yunying("check", "--data", str(data)).returncode == 0
    assert not orphan.exists()


def test_a_lost_index_is_rebuilt_from_the_stored_records(tmp_path: Path) -> None:
    data = tmp_path / "data"
    src = tmp_path / "in"
    src.mkdir()
    study = generate_uid()
    for i in range(4):
        (src / f"{i}.dcm").write_bytes(part10(make_ct(study, number=i)))
    assert yunying("import", str(src), "--data", str(data)).returncode == 0
    for f in data.glob("index.duckdb*"):
        f.unlink()
    res = yunying("check", "--data", str(data), "--repair")
    assert res.returncode == 0 and "4 version(s) indexed again" in res.stdout
    srv = start_yunying(data)
    try:
        assert len(web.get(f"{srv.dicomweb_url}/studies/{study}/instances").json()) == 4
    finally:
        srv.stop()


@pytest.mark.parametrize("args, env, needle", [
    (["--http-port", "70000"], {}, "http_port"),
    (["--aet", "THIS_AE_TITLE_IS_TOO_LONG"], {}, "aet"),
    (["--host", "not-an-ip"], {}, "host"),
    ([], {"YUNYING_DIMSE_PORT": "abc"}, "YUNYING_DIMSE_PORT"),
    (["--peers", "/nonexistent/peers.json"], {}, "peers"),
])
def test_bad_setting_is_a_clear_message(tmp_path: Path, args: list[str], env: dict[str, str], needle: str) -> None:
    res = yunying("serve", "--data", str(tmp_path / "d"), *args, env=env)
    assert res.returncode == 2
    assert "bad setting" in res.stderr and needle in res.stderr


def test_config_file_and_environment(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "yunying.toml"
    cfg.write_text(f'data = "{tmp_path / "d"}"\nhttp_port = {port}\ndimse_port = 0\ncors_origins = ["https://viewer.example.org"]\n')
    proc = subprocess.Popen([sys.executable, "-m", "yunying.cli", "serve", "--config", str(cfg)],
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "YUNYING_API_KEY": "cfg-test-key-0123456789"},
                            cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import time
        deadline = time.monotonic() + START_TIMEOUT_S  # a loaded machine: 30 s was not always enough
        resp: httpx.Response | None = None
        while time.monotonic() < deadline:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/dicomweb/studies",
                                 headers={"Origin": "https://viewer.example.org",
                                          "Authorization": "Bearer cfg-test-key-0123456789"})
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert resp is not None and resp.status_code == 200
        assert resp.headers["access-control-allow-origin"] == "https://viewer.example.org"
    finally:
        proc.terminate()
        proc.wait(30)
    bad = tmp_path / "bad.toml"
    bad.write_text("no_such_setting = 1\n")
    res = yunying("serve", "--config", str(bad))
    assert res.returncode == 2 and "no_such_setting" in res.stderr


def test_sigterm_loses_nothing_that_was_acknowledged(tmp_path: Path) -> None:
    srv = start_yunying(tmp_path / "data")
    study = generate_uid()
    acked: list[str] = []
    stop = threading.Event()

    def sender() -> None:
        with web.Client(timeout=30) as client:
            n = 0
            while not stop.is_set() and n < 400:
                ds = make_ct(study, number=n)
                body, ctype = multipart(part10(ds))
                try:
                    resp = client.post(srv.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype})
                except httpx.HTTPError:
                    return
                if resp.status_code == 200:
                    acked.append(ds.SOPInstanceUID)
                n += 1

    threads = [threading.Thread(target=sender) for _ in range(3)]
    for t in threads:
        t.start()
    import time
    deadline = time.monotonic() + 60
    while len(acked) < 10 and time.monotonic() < deadline:  # stores in flight, some acknowledged
        time.sleep(0.05)
    assert len(acked) >= 10, "no stores were acknowledged: nothing to check after the stop"
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(60) == 0
    assert not (tmp_path / "data" / "RUNNING").exists()  # closed cleanly: the index writer was drained
    stop.set()
    for t in threads:
        t.join(60)
    assert acked, "nothing was stored before the signal"
    srv2 = start_yunying(tmp_path / "data")
    try:
        got = web.get(f"{srv2.dicomweb_url}/studies/{study}/instances").json()
        assert set(acked) <= {g["00080018"]["Value"][0] for g in got}
    finally:
        srv2.stop()
    assert yunying("check", "--data", str(tmp_path / "data")).returncode == 0


def test_server_log_has_no_patient_data(tmp_path: Path) -> None:
    """style.md: never log patient identifiers or names, whatever the input looks like."""
    srv = start_yunying(tmp_path / "data")
    try:
        ds = make_ct(name="Secretname^Verysecret", patient_id="PIDSECRET123")
        import pydicom.config
        from pydicom.dataelem import DataElement

        # an invalid value that pydicom would quote in a validation warning
        ds.add(DataElement(0x00100030, "DA", "PIDSECRET123", validation_mode=pydicom.config.IGNORE))
        ds.add(DataElement(0x00200052, "UI", "1.2.PIDSECRET123", validation_mode=pydicom.config.IGNORE))
        ds.add_new(0x00081030, "LO", "STUDYDESCSECRET")
        body, ctype = multipart(part10(ds), b"garbage part")
        # each request must have done what it was sent for, or the log had nothing to leak
        stored = web.post(srv.dicomweb_url + "/studies", content=body, headers={"Content-Type": ctype}, timeout=30)
        assert stored.status_code == 202 and len(stored.json()["00081199"]["Value"]) == 1, stored.text
        found = web.get(srv.dicomweb_url + "/studies", params={"PatientName": "Secretname*", "PatientID": "PIDSECRET123"})
        assert found.status_code == 200 and len(found.json()) == 1, found.text
        bad = web.get(srv.dicomweb_url + "/studies", params={"StudyDate": "PIDSECRET123"})
        assert bad.status_code == 400, bad.text
    finally:
        srv.stop()
    log = srv.log_path.read_text(errors="replace")
    for secret in ("Secretname", "Verysecret", "PIDSECRET123", "STUDYDESCSECRET"):
        assert secret not in log


def test_serve_says_when_group_sync_shares_the_root_file_system(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from yunying.archive import Archive
    from yunying.cli import _note_shared_volume

    archive = Archive(tmp_path / "data")
    try:
        with caplog.at_level(logging.INFO, logger="yunying"):
            _note_shared_volume(archive)
        on_root = os.stat(tmp_path).st_dev == os.stat("/").st_dev
        said = any("syncfs" in r.getMessage() for r in caplog.records)
        assert said == (on_root and archive.storage.group_sync)
    finally:
        archive.close()
