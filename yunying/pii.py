"""Personal data at rest: SM4-GCM sealing and keyed blind indexes (MLPS level 3, issue 12 part 6).

Every table of ours that keeps an ID card number, a phone number, an address or an uploaded
photo keeps it sealed (`PiiKeys.seal`) and, where it must be looked up exactly, next to a blind
index (`PiiKeys.blind`): an HMAC-SM3 of the normalised value under a key of its own, so equal
values find each other and a copy of the database reveals neither.

The keys live in one key file OUTSIDE the data folder (a stolen backup of the data folder is
not enough): setting `pii_key_file`, else the environment's `YUNYING_PII_KEYS` (the file's
content), else `<data>.pii.key` next to the data folder, created 0600 on first use. Format, one
key per line, base64 of 16 bytes:

    blind <key>          the blind-index key: never rotated (indexes would stop matching)
    seal <kid> <key>     a sealing key; the LAST one seals, all of them unseal
    secret <name> <key>  a named secret of a component (e.g. the portal's, moved here from the
                         data folder); a component without one derives it from the blind key

Rotation: `yunying pii rotate` appends a new sealing key and re-seals every registered sealed
column (`sealed_column`); a sealed value names its key id, so old values unseal meanwhile.
"""
from __future__ import annotations

import base64
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import Engine, LargeBinary, Table, inspect, select, update

PREFIX = "s1"  # version of the sealed form "s1.<kid>.<base64url(nonce | ciphertext | tag)>"
ENV = "YUNYING_PII_KEYS"


class PiiKeyError(RuntimeError):
    """The key file is missing, malformed, or does not hold the key a value was sealed with."""


def normalise(kind: str, value: str) -> str:
    """The form a blind index is computed on: phones as digits without +86, IDs upper-case."""
    if kind == "phone":
        digits = re.sub(r"\D", "", value)
        return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits
    if kind == "id":
        return re.sub(r"\s+", "", value).upper()
    return re.sub(r"[\s^]+", "", value).lower()  # names, addresses: spacing and PN carets ignored


def _sm4_gcm(key: bytes, nonce: bytes, tag: bytes | None = None) -> Cipher:  # type: ignore[type-arg]
    return Cipher(algorithms.SM4(key), modes.GCM(nonce, tag))


@dataclass(frozen=True)
class PiiKeys:
    blind_key: bytes
    seal_keys: tuple[tuple[str, bytes], ...]  # (kid, key); the last seals
    named: tuple[tuple[str, bytes], ...] = ()  # (name, key) from `secret` lines

    def secret(self, name: str) -> bytes:
        """A component's 32-byte secret: its `secret` line, else derived from the blind key."""
        found = dict(self.named).get(name)
        return found if found is not None else hmac.new(self.blind_key, f"secret\n{name}".encode(), "sha256").digest()

    def is_current(self, sealed: str) -> bool:
        """Whether `sealed` is sealed under the key that seals now (nothing to re-seal)."""
        return sealed.startswith(f"{PREFIX}.{self.seal_keys[-1][0]}.")

    def seal_bytes(self, data: bytes, context: str) -> str:
        """SM4-GCM with a random 96-bit nonce; `context` (e.g. "portal.phone") is bound as AAD,
        so a sealed value copied into another column does not unseal there."""
        kid, key = self.seal_keys[-1]
        nonce = os.urandom(12)
        enc = _sm4_gcm(key, nonce).encryptor()
        enc.authenticate_additional_data(context.encode())
        body = enc.update(data) + enc.finalize()
        blob = base64.urlsafe_b64encode(nonce + body + enc.tag).decode().rstrip("=")
        return f"{PREFIX}.{kid}.{blob}"

    def unseal_bytes(self, sealed: str, context: str) -> bytes:
        try:
            prefix, kid, blob = sealed.split(".", 2)
            raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
        except ValueError:
            raise PiiKeyError("not a sealed value") from None
        key = dict(self.seal_keys).get(kid)
        if prefix != PREFIX or key is None or len(raw) < 28:
            raise PiiKeyError(f"sealed with unknown key {kid!r}" if key is None else "not a sealed value")
        nonce, body, tag = raw[:12], raw[12:-16], raw[-16:]
        dec = _sm4_gcm(key, nonce, tag).decryptor()
        dec.authenticate_additional_data(context.encode())
        try:
            return dec.update(body) + dec.finalize()
        except InvalidTag:
            raise PiiKeyError("sealed value altered, or unsealed in the wrong context") from None

    def seal(self, value: str, context: str) -> str:
        return self.seal_bytes(value.encode(), context)

    def unseal(self, sealed: str, context: str) -> str:
        return self.unseal_bytes(sealed, context).decode()

    def reseal(self, sealed: str, context: str) -> str:
        """The value sealed again under the current key (key rotation); unchanged if it already is."""
        if self.is_current(sealed):
            return sealed
        return self.seal_bytes(self.unseal_bytes(sealed, context), context)

    def blind(self, kind: str, value: str) -> str:
        """Keyed blind index of a normalised value: hex HMAC-SM3 (32 bytes)."""
        from yunying.audit.chain import ALG  # SM3 where OpenSSL has it, as the audit chain
        digest = "sm3" if ALG == "hmac-sm3" else "sha256"
        return hmac.new(self.blind_key, f"{kind}\n{normalise(kind, value)}".encode(), digest).hexdigest()


def parse(text: str) -> PiiKeys:
    blind: bytes | None = None
    seals: list[tuple[str, bytes]] = []
    named: list[tuple[str, bytes]] = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            if parts[0] == "blind" and len(parts) == 2:
                blind = base64.b64decode(parts[1], validate=True)
            elif parts[0] == "seal" and len(parts) == 3 and re.fullmatch(r"[A-Za-z0-9_-]{1,16}", parts[1]):
                seals.append((parts[1], base64.b64decode(parts[2], validate=True)))
            elif parts[0] == "secret" and len(parts) == 3 and re.fullmatch(r"[a-z0-9_.-]{1,32}", parts[1]):
                named.append((parts[1], base64.b64decode(parts[2], validate=True)))
            else:
                raise ValueError
        except ValueError:
            raise PiiKeyError(f"key file line {n}: expected 'blind <base64>', 'seal <kid> <base64>' "
                              "or 'secret <name> <base64>'") from None
    if blind is None or not seals or any(len(k) != 16 for _, k in seals) or len(blind) < 16:
        raise PiiKeyError("key file needs one 'blind' key and at least one 'seal' key of 16 bytes")
    return PiiKeys(blind, tuple(seals), tuple(named))


def new_key_line(kind: str, kid: str = "") -> str:
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    return f"blind {key}\n" if kind == "blind" else f"seal {kid} {key}\n"


def default_key_file(data: Path) -> Path:
    """`<data>.pii.key`: beside the data folder, not in it."""
    data = Path(data).resolve()
    return data.with_name(data.name + ".pii.key")


@lru_cache(maxsize=8)
def _load(path: str, changed: int = 0) -> PiiKeys:  # changed: the file's mtime, so a rotation is seen
    file = Path(path)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first
        else:
            with os.fdopen(fd, "w") as f:
                f.write("# Yunying personal-data keys: keep outside the data folder, back up separately\n")
                f.write(new_key_line("blind") + new_key_line("seal", "k1"))
                f.flush()
                os.fsync(f.fileno())
    return parse(file.read_text())


def keys_for(data: Path, key_file: str = "") -> PiiKeys:
    """The keys for a data folder: the configured key file, the environment, or the default file."""
    if key_file:
        if not Path(key_file).exists():
            raise PiiKeyError(f"pii_key_file {key_file}: no such file")
        return _load(str(Path(key_file).resolve()), Path(key_file).stat().st_mtime_ns)
    if os.environ.get(ENV):
        return _parse_env(os.environ[ENV])
    path = default_key_file(data)
    return _load(str(path), path.stat().st_mtime_ns if path.exists() else 0)


@lru_cache(maxsize=2)
def _parse_env(text: str) -> PiiKeys:
    return parse(text)


def key_file_of(data: Path, key_file: str = "") -> Path | None:
    """The file the keys of a data folder come from; None when they come from the environment."""
    if key_file:
        return Path(key_file).resolve()
    return None if os.environ.get(ENV) else default_key_file(data)


def add_secret(key_file: Path, name: str, secret: bytes) -> None:
    """Append a component's secret to the key file (moving it out of the data folder)."""
    with open(key_file, "a") as f:
        f.write(f"secret {name} {base64.b64encode(secret).decode()}\n")
        f.flush()
        os.fsync(f.fileno())
    _load.cache_clear()


def rotate(key_file: Path) -> str:
    """Append a new sealing key to a key file; returns its id. Values sealed before still unseal."""
    keys = parse(key_file.read_text())
    numbers = [int(k[1:]) for k, _ in keys.seal_keys if re.fullmatch(r"k\d+", k)]
    kid = f"k{max(numbers, default=0) + 1}"  # never an id in use, even after an old line was removed
    with open(key_file, "a") as f:
        f.write(new_key_line("seal", kid))
        f.flush()
        os.fsync(f.fileno())
    _load.cache_clear()
    return kid


@dataclass(frozen=True)
class SealedColumn:
    """A column that keeps sealed values (text, or the sealed text's bytes in a binary column)."""

    table: Table
    column: str
    context: str  # the AAD: "<table>.<column>"

    @property
    def binary(self) -> bool:
        return isinstance(self.table.c[self.column].type, LargeBinary)


SEALED: list[SealedColumn] = []


def sealed_column(table: Table, column: str, context: str = "") -> str:
    """Register `table.column` as sealed (for `reseal_all`); returns its context (the AAD its
    values are sealed with: "<table>.<column>" unless the owner chose another)."""
    found = SealedColumn(table, column, context or f"{table.name}.{column}")
    if found not in SEALED:
        SEALED.append(found)
    return found.context


def reseal_all(engine: Engine, keys: PiiKeys) -> dict[str, int]:
    """Seal every registered column's values under the current key: clear values left by an
    older version (the data migration) and values sealed under an older key (rotation).
    Returns the rows changed per column; safe to run again (sealed-now values are skipped)."""
    changed: dict[str, int] = {}
    tables = set(inspect(engine).get_table_names())
    for col in SEALED:
        if col.table.name not in tables:  # its component's migrations have not run on this store
            continue
        pk = list(col.table.primary_key.columns)
        target = col.table.c[col.column]
        done = 0
        query = select(*pk, target).where(target.is_not(None))
        if not col.binary:  # what is sealed under the current key already is left in the database
            query = query.where(target.not_like(f"{PREFIX}.{keys.seal_keys[-1][0]}.%"))
        with engine.begin() as conn:
            rows = conn.execute(query).all()
            for row in rows:
                stored = row[-1]
                text = stored.decode("latin-1") if col.binary else stored
                if keys.is_current(text):
                    continue
                if text.startswith(PREFIX + "."):
                    sealed = keys.reseal(text, col.context)
                else:  # clear, from before sealing existed
                    sealed = keys.seal_bytes(stored if col.binary else stored.encode(), col.context)
                value: str | bytes = sealed.encode() if col.binary else sealed
                conn.execute(update(col.table).where(*[c == row[i] for i, c in enumerate(pk)]).values({col.column: value}))
                done += 1
        changed[col.context] = done
    if any(changed.values()):
        scrub(engine)
    return changed


def scrub(engine: Engine) -> None:
    """Leave no copy of the replaced values in the database's files: SQLite keeps them in free
    pages and in the write-ahead log until both are rewritten. (PostgreSQL keeps dead row
    versions until a VACUUM FULL, which is the operator's to run: README.)"""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM")
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
