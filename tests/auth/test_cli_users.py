"""`yunying users ...` through subprocesses, and keys provisioned from config and environment."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.net import REPO_ROOT, start_yunying
from tests.auth import plain
from tests.conftest import start_with_env


def users(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUNYING_")} | {"PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "yunying.cli", "users", *args, "--data", str(data)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_users_lifecycle_on_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert users(data, "hospitals", "--add", "h2", "--name", "Second").returncode == 0
    assert "h2" in users(data, "hospitals").stdout
    assert users(data, "departments", "--hospital", "h2", "--add", "Radiology").returncode == 0
    made = users(data, "add", "dr.chen", "--hospital", "h2", "--role", "radiologist:reviewing")
    assert made.returncode == 0, made.stderr
    assert re.search(r"one-time password: \S{12,}", made.stdout)
    listed = json.loads(users(data, "list", "--hospital", "h2", "--json").stdout)
    assert [(u["username"], u["roles"][0]["role"], u["roles"][0]["level"]) for u in listed] == [
        ("dr.chen", "radiologist", "reviewing")]
    assert users(data, "disable", "dr.chen").returncode == 0
    assert json.loads(users(data, "list", "--json", "--q", "chen").stdout)[0]["disabled"] is True
    assert users(data, "enable", "dr.chen").returncode == 0
    assert "one-time password" in users(data, "reset-password", "dr.chen").stdout
    clash = users(data, "grant", "dr.chen", "audit_admin", "--hospital", "h2")
    assert clash.returncode == 0  # a radiologist may also read the audit trail ...
    refused = users(data, "grant", "dr.chen", "hospital_admin", "--hospital", "h2")
    assert refused.returncode == 1 and "audit" in refused.stderr  # ... but not also manage users
    assert "radiologist" in users(data, "roles", "--q", "radio").stdout
    assert users(data, "delete", "dr.chen").returncode == 0
    gone = users(data, "delete", "dr.chen")
    assert gone.returncode == 1 and "no user" in gone.stderr


def test_api_keys_from_the_cli_work_on_the_server_and_revoke(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = users(data, "api-keys", "--add", "pacs", "--scope", "dicomweb.read")
    shown = re.search(r"API key (\S+) \(pacs\): (\S+)", made.stdout)
    assert shown, made.stdout
    key_id, key = shown.groups()
    srv = start_yunying(data)
    try:
        url = srv.dicomweb_url + "/studies"
        assert plain.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert plain.post(url, headers={"Authorization": f"Bearer {key}"}, content=b"").status_code == 403
        listing = users(data, "api-keys").stdout
        assert "pacs" in listing and key not in listing
        assert users(data, "api-keys", "--revoke", key_id).returncode == 0
        assert plain.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == 401
    finally:
        srv.stop()


def test_config_file_keys_and_a_removed_environment_key(tmp_path: Path) -> None:
    cfg = tmp_path / "yunying.toml"
    cfg.write_text('[[api_keys]]\nname = "ris"\nkey_env = "RIS_KEY"\nscopes = ["dicomweb.read"]\nhospital = "h9"\n')
    srv = start_with_env(tmp_path / "data", YUNYING_CONFIG=str(cfg), RIS_KEY="ris-secret-0123456789")
    old_env_key = srv.api_key
    try:
        me = plain.get(srv.http_url + "/api/auth/me", headers={"Authorization": "Bearer ris-secret-0123456789"}).json()
        assert me["id"] == "config:ris" and me["hospital"] == "h9" and me["permissions"] == ["dicomweb.read"]
    finally:
        srv.stop()
    srv = start_yunying(tmp_path / "data", api_key="another-key-0123456789")
    try:
        assert plain.get(srv.dicomweb_url + "/studies", headers={"Authorization": f"Bearer {old_env_key}"}
                         ).status_code == 401  # the environment key it replaced stops working
        assert plain.get(srv.dicomweb_url + "/studies", headers={"Authorization": "Bearer ris-secret-0123456789"}
                         ).status_code == 401  # no longer configured
    finally:
        srv.stop()


def test_a_bad_key_setting_stops_the_server_with_a_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUNYING_")}
    for extra, needle in (({"YUNYING_API_KEY": "short"}, "api_key"),
                          ({"YUNYING_API_KEYS": "not json"}, "YUNYING_API_KEYS"),
                          ({"YUNYING_API_KEYS": '[{"name": "x"}]'}, "api_keys[0]")):
        res = subprocess.run([sys.executable, "-m", "yunying.cli", "serve", "--data", str(tmp_path / "d")],
                             cwd=REPO_ROOT, env=env | extra | {"PYTHONPATH": str(REPO_ROOT)},
                             capture_output=True, text=True, timeout=60, check=False)
        assert res.returncode == 2 and needle in res.stderr, res.stderr
