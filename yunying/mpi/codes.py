"""Each hospital's exam item codes mapped to the standard code table (issue 15 part 5; the
basis of cross-hospital mutual recognition). Imported from CSV (UTF-8, or GB18030 as Excel
in China saves it) or Excel (.xlsx) with a header row naming the columns:

    hospital, local_code, local_name, standard_code, standard_name

A row for an existing (hospital, local_code) replaces it; the whole file is one transaction,
refused whole (nothing changed) when any row is bad.
"""
from __future__ import annotations

import csv
import io
import time
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from yunying.errors import ArchiveError
from yunying.mpi.schema import codes

COLUMNS = ("hospital", "local_code", "local_name", "standard_code", "standard_name")
REQUIRED = ("hospital", "local_code", "standard_code")
LIMITS = {"hospital": 64, "local_code": 64, "local_name": 200, "standard_code": 64, "standard_name": 200}
XLSX_MAGIC = b"PK\x03\x04"


class BadCodeTable(ArchiveError):
    """The uploaded table cannot be read or has a bad row (the reason names the row)."""

    http_status = 400


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise BadCodeTable("the CSV file is neither UTF-8 nor GB18030")


def read_rows(data: bytes) -> list[dict[str, str]]:
    """The table's rows as dicts of the known columns; BadCodeTable naming the first bad row."""
    if data.startswith(XLSX_MAGIC):
        raw = _xlsx_rows(data)
    else:
        text = _decode(data)
        if "\x00" in text:  # csv refuses NUL, and PostgreSQL stores none: not a table
            raise BadCodeTable("the CSV file holds NUL characters: not a text table")
        try:
            raw = [list(r) for r in csv.reader(io.StringIO(text))]
        except csv.Error as exc:
            raise BadCodeTable(f"not a readable CSV table ({exc})") from None
    if not raw:
        raise BadCodeTable("the table is empty")
    header = [str(h or "").strip().lower() for h in raw[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise BadCodeTable(f"header row: missing column(s) {', '.join(missing)}")
    out = []
    for n, values in enumerate(raw[1:], start=2):
        if not any(str(v or "").strip() for v in values):
            continue
        row = {c: str(values[header.index(c)] if header.index(c) < len(values) and values[header.index(c)]
                      is not None else "").strip() if c in header else "" for c in COLUMNS}
        for c in REQUIRED:
            if not row[c]:
                raise BadCodeTable(f"row {n}: {c} is empty")
        for c, limit in LIMITS.items():
            if len(row[c]) > limit:
                raise BadCodeTable(f"row {n}: {c} longer than {limit} characters")
        out.append(row)
    return out


def _xlsx_rows(data: bytes) -> list[list[Any]]:
    from openpyxl import load_workbook

    try:
        sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
        return [list(r) for r in sheet.iter_rows(values_only=True)]
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a bad file
        raise BadCodeTable(f"not a readable .xlsx workbook ({type(exc).__name__})") from None


def import_table(engine: Engine, data: bytes) -> int:
    """Insert or replace every row of an uploaded table; returns the number of rows."""
    rows = read_rows(data)
    now = int(time.time())
    with engine.begin() as conn:
        for row in rows:
            conn.execute(delete(codes).where(codes.c.hospital == row["hospital"],
                                             codes.c.local_code == row["local_code"]))
            conn.execute(insert(codes).values(**row, updated_at=now))
    return len(rows)


def list_codes(engine: Engine, hospital: str = "", limit: int = 500, offset: int = 0) -> list[dict[str, Any]]:
    q = select(codes).order_by(codes.c.hospital, codes.c.local_code).limit(limit).offset(offset)
    if hospital:
        q = q.where(codes.c.hospital == hospital)
    with engine.connect() as conn:
        return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(q)]


def standard_code(engine: Engine, hospital: str, local_code: str) -> str | None:
    """The standard code of a hospital's exam item, None when it is not mapped."""
    with engine.connect() as conn:
        return conn.execute(select(codes.c.standard_code).where(
            codes.c.hospital == hospital, codes.c.local_code == local_code)).scalar()
