"""Purge beyond retention (issue 12 part 2): anchored, itself recorded, the chain still verifies."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

import yunying.audit.schema  # noqa: F401 - registers the migration
from yunying.audit.chain import load_key
from yunying.audit.store import DAY_MS, purge, search, verify
from yunying.audit.trail import Trail
from yunying.auth.store import open_store


def test_purge_keeps_the_chain_verifiable_and_is_recorded(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    trail = Trail(store.engine, load_key(tmp_path))
    try:
        old = int(time.time() * 1000) - 200 * DAY_MS
        for i in range(5):
            trail.submit({"action": "metadata", "principal_id": f"u{i}", "at_ms": old + i}).result(10)
        for i in range(3):
            trail.submit({"action": "query", "principal_id": "recent"}).result(10)
        with pytest.raises(ValueError):
            purge(trail, 90)  # below the 180 days GB/T 22239 asks for
        assert purge(trail, 180) == 5
        trail.submit({"action": "frames", "principal_id": "after"}).result(10)
    finally:
        trail.close()
    n, problems = verify(store.engine, load_key(tmp_path))
    assert problems == [] and n == 5  # 3 recent, the purge record, one after
    (purged,) = search(store.engine, action="audit.purge")
    assert purged["count"] == 5
    assert {r["principal_id"] for r in search(store.engine)} == {"recent", "yunying", "after"}
    with store.engine.begin() as conn:  # an anchor edited to hide more records is caught
        conn.exec_driver_sql("UPDATE audit_anchors SET purged = 1")
    assert "the purge anchor was altered" in verify(store.engine, load_key(tmp_path))[1]


def test_the_key_file_is_private(tmp_path: Path) -> None:
    load_key(tmp_path)
    assert (tmp_path / "keys" / "audit.key").stat().st_mode & 0o077 == 0


def test_user_changes_on_the_command_line_are_recorded(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from benchmarks.net import REPO_ROOT

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def yy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "yunying.cli", *args, "--data", str(tmp_path)], check=False,
                              capture_output=True, text=True, env=env, timeout=120)
    assert yy("users", "add", "dr.cli", "--role", "doctor").returncode == 0
    assert yy("users", "disable", "dr.cli").returncode == 0
    out = yy("audit", "search", "--action", "users.disable")
    assert out.returncode == 0 and "users.disable" in out.stdout and "user:os:" in out.stdout
    assert yy("audit", "verify").returncode == 0
    out = yy("audit", "export", "--format", "xlsx", "-o", str(tmp_path / "trail.xlsx"), "--action", "users.add")
    assert out.returncode == 0 and "1 record(s)" in out.stderr
    assert (tmp_path / "trail.xlsx").read_bytes()[:2] == b"PK"  # an Excel (zip) workbook
    rows = search(open_store(tmp_path).engine)
    assert [r["action"] for r in reversed(rows)] == ["users.add", "users.disable", "audit.read", "audit.verify",
                                                     "audit.export"]
    assert "dr.cli" in rows[-1]["detail"]
