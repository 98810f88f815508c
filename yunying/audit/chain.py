"""The keyed hash chain over audit records (issue 12 part 2).

Each record carries HMAC(key, prev_hash | seq | every field) — SM3 (GB/T 32905) through
`cryptography` where OpenSSL offers it, SHA-256 otherwise — so an altered, removed, inserted
or reordered record breaks the chain at that point, and nobody without the key (kept outside
the database: `<data>/keys/audit.key`, mode 0600, or YUNYING_AUDIT_KEY) can re-chain it.
"""
from __future__ import annotations

import functools
import hashlib
import hmac as std_hmac
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from yunying.audit.schema import FIELDS

GENESIS = "0" * 64  # prev_hash of the first record ever written
KEY_ENV = "YUNYING_AUDIT_KEY"


def _sm3_available() -> bool:
    try:
        from cryptography.hazmat.primitives import hashes, hmac
        hmac.HMAC(b"k", hashes.SM3()).finalize()
        return True
    except Exception:  # noqa: BLE001 - an OpenSSL without SM3
        return False


ALG = "hmac-sm3" if _sm3_available() else "hmac-sha256"


def mac(key: bytes, data: bytes, alg: str = ALG) -> str:
    """The hex HMAC of data with the named algorithm."""
    if alg == "hmac-sm3":
        h = _keyed_sm3(key).copy()  # keyed once per key: the writer MACs every record
        h.update(data)
        return h.finalize().hex()
    if alg == "hmac-sha256":
        return std_hmac.new(key, data, hashlib.sha256).hexdigest()
    raise ValueError(f"unknown audit hash algorithm {alg!r}")


@functools.lru_cache(maxsize=8)
def _keyed_sm3(key: bytes) -> Any:
    from cryptography.hazmat.primitives import hashes, hmac
    return hmac.HMAC(key, hashes.SM3())


def content(row: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers: every field but the hash, in a fixed order."""
    return orjson.dumps([row[f] for f in FIELDS])


def content_of(values: tuple[Any, ...]) -> bytes:
    """content() of the record whose FIELDS are `values`, in FIELDS' order (the same bytes:
    orjson writes a tuple as the array a list makes)."""
    return orjson.dumps(values)


def record_hash(key: bytes, row: Mapping[str, Any]) -> str:
    return mac(key, content(row), row["alg"])


def head_mac(key: bytes, seq: int, last: str) -> str:
    return mac(key, f"head|{seq}|{last}".encode(), ALG)


def anchor_mac(key: bytes, through_seq: int, through_hash: str, purged: int, at_ms: int) -> str:
    return mac(key, f"anchor|{through_seq}|{through_hash}|{purged}|{at_ms}".encode(), ALG)


def load_key(data: Path, environ: Mapping[str, str] | None = None, create: bool = True) -> bytes:
    """The chain key: YUNYING_AUDIT_KEY (hex, >= 32 bytes) or <data>/keys/audit.key (created 0600)."""
    environ = os.environ if environ is None else environ
    if environ.get(KEY_ENV):
        key = bytes.fromhex(environ[KEY_ENV].strip())
        if len(key) < 32:
            raise ValueError(f"{KEY_ENV}: at least 32 bytes (64 hex digits)")
        return key
    path = Path(data) / "keys" / "audit.key"
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"no audit key at {path} (nor {KEY_ENV})")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
    return bytes.fromhex(path.read_text().strip())


def verify_rows(key: bytes, rows: Iterable[Mapping[str, Any]], start_seq: int, start_hash: str,
                head: tuple[int, str, str] | None) -> tuple[int, list[str]]:
    """Walk records in seq order from an anchor (or genesis); returns (records checked, problems)."""
    problems: list[str] = []
    expect_seq, prev = start_seq + 1, start_hash
    n = 0
    for row in rows:
        n += 1
        seq = row["seq"]
        if seq != expect_seq:
            problems.append(f"records {expect_seq}..{seq - 1} are missing (removed)" if seq > expect_seq
                            else f"record {seq} is out of order")
        if row["prev_hash"] != prev:
            problems.append(f"record {seq}: chain broken (a record before it was removed, inserted or reordered)")
        if not std_hmac.compare_digest(record_hash(key, row), row["hash"]):
            problems.append(f"record {seq}: altered (its hash does not match its content)")
        expect_seq, prev = seq + 1, row["hash"]
    if head is None:
        if n:
            problems.append("the chain's head is missing")
    else:
        seq, last, tag = head
        if not std_hmac.compare_digest(head_mac(key, seq, last), tag):
            problems.append("the chain's head was altered")
        elif seq != expect_seq - 1 or last != prev:
            problems.append(f"the chain ends at record {expect_seq - 1} but its head says {seq}: "
                            "records at the end were removed")
    return n, problems
