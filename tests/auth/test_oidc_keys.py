"""Signing keys: a 0600 file outside the database, refused when others may read it, rotation."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from joserfc import jwt

from yunying.auth.oidc.keys import KeyFileError, add_key, load_keys, prune_keys


def test_the_first_key_is_created_private(tmp_path: Path) -> None:
    keys = load_keys(tmp_path / "keys")
    (pem,) = (tmp_path / "keys").glob("signing-*.pem")
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert "d" not in keys.jwks()["keys"][0] and keys.jwks()["keys"][0]["kid"] == keys.kid


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    load_keys(tmp_path)
    (pem,) = tmp_path.glob("signing-*.pem")
    os.chmod(pem, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_keys(tmp_path)


def test_rotation_signs_with_the_new_key_and_keeps_the_old_one_published(tmp_path: Path) -> None:
    old = load_keys(tmp_path)
    token = jwt.encode({"alg": "ES256", "kid": old.kid}, {"sub": "x"}, old.current, algorithms=["ES256"])
    add_key(tmp_path)
    new = load_keys(tmp_path)
    assert new.kid != old.kid and {k["kid"] for k in new.jwks()["keys"]} == {old.kid, new.kid}
    assert jwt.decode(token, new.published, algorithms=["ES256"]).claims == {"sub": "x"}  # still verifies
    assert len(prune_keys(tmp_path, keep=1)) == 1
    assert [k["kid"] for k in load_keys(tmp_path).jwks()["keys"]] == [new.kid]
