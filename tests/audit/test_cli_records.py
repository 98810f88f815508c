"""Key and client changes on the command line are in the trail (issue 12 parts 1, 5, 6), and
their DICOM audit messages name them as security configuration changes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lxml import etree

from benchmarks.net import REPO_ROOT
from yunying.audit.store import search
from yunying.auth.store import open_store

SCHEMA = etree.RelaxNG(etree.parse(str(Path(__file__).with_name("dicom_audit_message.rng"))))


def test_client_signing_and_sealing_key_changes_are_recorded(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def yy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "yunying.cli", *args, "--data", str(tmp_path)], check=False,
                              capture_output=True, text=True, env=env, timeout=120)
    added = yy("oauth", "clients", "add", "ris", "--confidential", "--client-id", "ris-1")
    assert added.returncode == 0, added.stderr
    assert yy("oauth", "clients", "remove", "ris-1").returncode == 0
    assert yy("oauth", "clients", "remove", "ris-1").returncode == 1  # nothing removed: nothing recorded
    assert yy("oauth", "keys", "rotate").returncode == 0
    rotated = yy("pii", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    rows = list(reversed(search(open_store(tmp_path).engine)))
    assert [r["action"] for r in rows] == ["oauth.client.add", "oauth.client.remove", "oauth.keys.rotate", "pii.rotate"]
    assert all(r["principal_id"].startswith("os:") and r["face"] == "cli" for r in rows)
    assert "ris-1" in rows[0]["detail"] and "secret" not in rows[0]["detail"]
    out = tmp_path / "trail.xml"
    assert yy("audit", "export", "--format", "dicom", "-o", str(out)).returncode == 0
    doc = etree.parse(str(out))
    assert SCHEMA.validate(doc), SCHEMA.error_log.last_error
    types = [m.find("EventIdentification/EventTypeCode").get("originalText") for m in doc.getroot()]
    assert types == ["Security Configuration"] * 4
