"""The portal's secret key and the keyed hashes made with it.

The key lives in a file of the data folder (0600), not in the app-state database: a copy of the
database alone reveals no phone number (a plain hash of an 11-digit number is reversed in
seconds) and cannot recompute exam tokens.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from functools import lru_cache
from pathlib import Path

KEY_FILE = "portal.key"


@lru_cache(maxsize=8)
def portal_key(data: Path) -> bytes:
    """The 32-byte key at <data>/portal.key, created on first use."""
    path = Path(data) / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(100):  # another process may have created it and not written it yet
            key = path.read_bytes()
            if len(key) == 32:
                return key
            time.sleep(0.01)
        raise RuntimeError(f"{path}: not a 32-byte key") from None
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(32))
        f.flush()
        os.fsync(f.fileno())
    return path.read_bytes()


def pseudonym(key: bytes, kind: str, value: str) -> str:
    """HMAC-SHA256 of a normalised identifier (phone, id, name): what the tables keep."""
    return hmac.new(key, f"{kind}\n{normalise(kind, value)}".encode(), hashlib.sha256).hexdigest()


def normalise(kind: str, value: str) -> str:
    if kind == "phone":
        digits = re.sub(r"\D", "", value)
        return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits
    if kind == "id":
        return value.strip().upper()
    return re.sub(r"[\s^]+", "", value).lower()  # names: "Zhang^San", "张 三" and "张三" match


def exam_token(key: bytes, hospital: str, study: str, generation: int) -> str:
    """The exam's capability token, recomputable so a reprinted report shows the same QR."""
    mac = hmac.new(key, f"exam\n{hospital}\n{study}\n{generation}".encode(), hashlib.sha256).digest()
    return "ycap_" + base64.urlsafe_b64encode(mac[:24]).decode()


def code_digest(key: bytes, phone_hash: str, code: str) -> str:
    return hmac.new(key, f"code\n{phone_hash}\n{code}".encode(), hashlib.sha256).hexdigest()


def mask_phone(last4: str) -> str:
    return f"*******{last4}" if last4 else ""
