"""Sealing personal data (SM4-GCM) and blind indexes: what every table with PII relies on."""
from __future__ import annotations

import pytest

from yunying import pii


def test_seal_round_trip_is_randomised_and_bound_to_context(tmp_path):
    keys = pii.keys_for(tmp_path / "data")
    a = keys.seal("13800138000", "portal.phone")
    b = keys.seal("13800138000", "portal.phone")
    assert a != b and "13800138000" not in a  # a fresh nonce each time; nothing in clear
    assert keys.unseal(a, "portal.phone") == "13800138000"
    with pytest.raises(pii.PiiKeyError):
        keys.unseal(a, "records.phone")  # copied into another column: refused
    tampered = a[:-2] + ("A" if a[-2] != "A" else "B") + a[-1]
    with pytest.raises(pii.PiiKeyError):
        keys.unseal(tampered, "portal.phone")


def test_key_file_lives_beside_the_data_folder_and_is_private(tmp_path):
    pii.keys_for(tmp_path / "data")
    path = pii.default_key_file(tmp_path / "data")
    assert path.parent == tmp_path and path.name == "data.pii.key"
    assert path.stat().st_mode & 0o077 == 0


def test_blind_index_matches_normalised_values_only(tmp_path):
    keys = pii.keys_for(tmp_path / "data")
    assert keys.blind("phone", "+86 138-0013-8000") == keys.blind("phone", "13800138000")
    assert keys.blind("id", "11010519491231002x") == keys.blind("id", "11010519491231002X")
    assert keys.blind("phone", "13800138000") != keys.blind("phone", "13800138001")
    assert keys.blind("phone", "13800138000") != keys.blind("id", "13800138000")
    other = pii.keys_for(tmp_path / "other")
    assert other.blind("phone", "13800138000") != keys.blind("phone", "13800138000")


def test_rotation_keeps_old_values_readable_and_reseals(tmp_path):
    keys = pii.keys_for(tmp_path / "data")
    old = keys.seal("110105194912310021", "auth.id_number")
    blind = keys.blind("id", "110105194912310021")
    kid = pii.rotate(pii.default_key_file(tmp_path / "data"))
    new_keys = pii.keys_for(tmp_path / "data")
    assert kid == "k2" and new_keys.seal_keys[-1][0] == "k2"
    assert new_keys.unseal(old, "auth.id_number") == "110105194912310021"
    resealed = new_keys.reseal(old, "auth.id_number")
    assert resealed.split(".")[1] == "k2" and new_keys.unseal(resealed, "auth.id_number") == "110105194912310021"
    assert new_keys.blind("id", "110105194912310021") == blind  # lookups survive rotation


def test_malformed_key_material_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(pii.ENV, "seal k1 not-base64!")
    with pytest.raises(pii.PiiKeyError, match="line 1"):
        pii.keys_for(tmp_path / "data")
    with pytest.raises(pii.PiiKeyError, match="no such file"):
        pii.keys_for(tmp_path / "data", str(tmp_path / "missing.key"))


def test_rotation_never_reuses_a_key_id(tmp_path):
    file = tmp_path / "keys"
    file.write_text(pii.new_key_line("blind") + pii.new_key_line("seal", "k2") + pii.new_key_line("seal", "k3"))
    assert pii.rotate(file) == "k4"  # k1 was removed once its values were re-sealed: k3 is not reused
    assert [k for k, _ in pii.parse(file.read_text()).seal_keys] == ["k2", "k3", "k4"]
