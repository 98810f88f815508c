"""The portal's secret and the keyed hashes (blind indexes) made with it.

The secret is the `portal` secret of the personal-data key file (`yunying.pii`), OUTSIDE the data
folder: a copy of the data folder reveals no phone number (a plain hash of an 11-digit number is
reversed in seconds) and cannot recompute exam tokens. Installations from before kept it in
`<data>/portal.key`: it is moved into the key file at start (`portal_secret`), so every stored
hash, account and printed QR code stays valid.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from pathlib import Path

from yunying import pii

LEGACY_KEY_FILE = "portal.key"
log = logging.getLogger("yunying.portal")


def portal_secret(data: Path, key_file: str = "") -> bytes:
    """The portal's 32-byte secret from the key file; moves a legacy <data>/portal.key there first."""
    keys = pii.keys_for(data, key_file)
    legacy = Path(data) / LEGACY_KEY_FILE
    if legacy.exists():
        old = legacy.read_bytes()
        if len(old) != 32:
            raise pii.PiiKeyError(f"{legacy}: not a 32-byte key")
        if "portal" not in dict(keys.named):
            target = pii.key_file_of(data, key_file)
            if target is None:  # the keys come from the environment: the operator adds the line
                raise pii.PiiKeyError(f"move {legacy} into YUNYING_PII_KEYS as the line "
                                      f"'secret portal {base64.b64encode(old).decode()}'")
            pii.add_secret(target, "portal", old)
            keys = pii.keys_for(data, key_file)
        if keys.secret("portal") != old:
            raise pii.PiiKeyError(f"{legacy} differs from the key file's portal secret: keep the right one")
        legacy.unlink()
        log.warning("the portal key moved from the data folder into the personal-data key file")
    return keys.secret("portal")


def pseudonym(key: bytes, kind: str, value: str) -> str:
    """HMAC-SHA256 of a normalised identifier (phone, id, name): what the tables keep."""
    return hmac.new(key, f"{kind}\n{normalise(kind, value)}".encode(), hashlib.sha256).hexdigest()


def normalise(kind: str, value: str) -> str:
    if kind == "id":
        return value.strip().upper()  # as before pii.normalise existed: stored hashes keep matching
    return pii.normalise(kind, value)  # names: "Zhang^San", "张 三" and "张三" match


def exam_token(key: bytes, hospital: str, study: str, generation: int) -> str:
    """The exam's capability token, recomputable so a reprinted report shows the same QR."""
    mac = hmac.new(key, f"exam\n{hospital}\n{study}\n{generation}".encode(), hashlib.sha256).digest()
    return "ycap_" + base64.urlsafe_b64encode(mac[:24]).decode()


def code_digest(key: bytes, phone_hash: str, code: str) -> str:
    return hmac.new(key, f"code\n{phone_hash}\n{code}".encode(), hashlib.sha256).hexdigest()


def mask_phone(last4: str) -> str:
    return f"*******{last4}" if last4 else ""
