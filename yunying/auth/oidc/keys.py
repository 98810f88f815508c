"""Token signing keys: ES256 key files outside the database, the newest signs, all are published.

Rotation (RFC 7517 key sets): `yunying oauth keys rotate` adds a key; it signs from then on while
the older keys stay in the JWKS until the tokens they signed have expired, then they can be
removed (`yunying oauth keys prune`). Each file is written 0600 in a 0700 folder.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, KeySet

ALGORITHM = "ES256"  # ECDSA P-256: small signatures, fast to verify (RFC 7518 §3.4)


class KeyFileError(RuntimeError):
    """A key file that cannot be read or is readable by others."""


@dataclass(frozen=True)
class SigningKeys:
    current: ECKey
    published: KeySet  # public halves of every key on disk, current included

    @property
    def kid(self) -> str:
        return str(self.current.kid)

    def jwks(self) -> dict[str, Any]:
        """The JWK Set document (public keys only)."""
        return {"keys": [{**k.as_dict(private=False), "use": "sig", "alg": ALGORITHM} for k in self.published]}


def load_keys(folder: Path, create: bool = True) -> SigningKeys:
    """Read every signing key in `folder`; create the first one when there is none."""
    files = sorted(folder.glob("signing-*.pem")) if folder.is_dir() else []
    if not files:
        if not create:
            raise KeyFileError(f"no signing key in {folder}")
        files = [add_key(folder)]
    keys = [_read(f) for f in files]
    public = KeySet([ECKey.import_key(k.as_dict(private=False), {"kid": str(k.kid)}) for k in keys])
    return SigningKeys(current=keys[-1], published=public)


def add_key(folder: Path) -> Path:
    """Generate a new key; being the newest file, it signs from the next start on."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ECKey.generate_key("P-256", private=True)
    path = folder / f"signing-{time.time_ns():020d}-{key.thumbprint()[:8]}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.as_pem(private=True))
    return path


def prune_keys(folder: Path, keep: int = 1) -> list[Path]:
    """Remove all but the `keep` newest keys; returns the removed files."""
    files = sorted(folder.glob("signing-*.pem"))
    removed = files[:-keep] if keep > 0 else []
    for f in removed:
        f.unlink()
    return removed


def _read(path: Path) -> ECKey:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:  # like ssh: a private key others can read is not a secret any more
        raise KeyFileError(f"{path} is readable by group/others (mode {mode:o}); chmod 600 it")
    try:
        key = ECKey.import_key(path.read_bytes())
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an EC private key in PEM: {exc}") from None
    if not key.is_private:
        raise KeyFileError(f"{path} holds no private key")
    return ECKey.import_key(key.as_dict(private=True), {"kid": key.thumbprint()})
