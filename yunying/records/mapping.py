"""The sources file: where each hospital system's records come from and how its columns map to ours.

    [[sources]]
    name = "ris"                  # unique; the collector's name in jobs, CLI and API
    kind = "sql"                  # sql (a view or intermediate table) | webservice (JSON over HTTP) | soap
    url_env = "RIS_DB_URL"        # or url = "postgresql+psycopg://..." (webservice: the endpoint)
    table = "V_YUNYING_EXAMS"     # sql: the view or table (schema = "..." when needed)
    watermark = "UPDATED_AT"      # a column that grows with every change: incremental reads
    key = "EXAM_NO"               # unique per row: orders rows of one watermark value
    batch = 500                   # rows per read and per transaction
    interval_seconds = 300        # how often `yunying serve` polls (0: only on demand)
    hospital = "h1"               # who the records belong to
    issuer = "HIS"                # assigning authority of the patient IDs
    [sources.columns]             # our field = the source's column (or JSON key)
    patient_id = "PAT_ID"
    name = "PAT_NAME"
    [sources.values.sex]          # optional: the source's codes -> ours
    "1" = "M"

Our fields are yunying.records.model.FIELDS.
"""
from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yunying.records.model import FIELDS, Record, RecordError, make_record
from yunying.settings import SettingError

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$#]{0,127}")  # a column, view or schema name (quoted by SQLAlchemy)
KNOWN = {"name", "kind", "url", "url_env", "table", "schema", "watermark", "key", "batch", "interval_seconds",
         "hospital", "issuer", "columns", "values", "token_env", "timeout_seconds",
         "operation", "patient_operation", "rows", "arguments"}  # the last four: SOAP (yunying/records/soap.py)


@dataclass(frozen=True)
class Source:
    name: str
    kind: str  # sql | webservice
    url: str = field(repr=False)
    table: str
    schema: str
    watermark: str
    key: str
    columns: dict[str, str]  # our field -> source column
    values: dict[str, dict[str, str]]  # our field -> {source code: our value}
    batch: int = 500
    interval_seconds: int = 300
    hospital: str = "default"
    issuer: str = ""
    token_env: str = ""
    timeout_seconds: float = 30.0
    operation: str = ""  # soap: the operation polled with after, after_key, limit
    patient_operation: str = ""  # soap: the operation of a real-time refresh (patient_id, limit)
    rows: str = ""  # soap: the answer's repeating element, when it is not the answer itself
    arguments: dict[str, str] = field(default_factory=dict)  # soap: our argument -> the service's name

    def record(self, row: Mapping[str, Any]) -> Record:
        """A source row (column -> value) as a checked Record."""
        raw: dict[str, Any] = {}
        for ours, theirs in self.columns.items():
            value = row.get(theirs)
            codes = self.values.get(ours)
            if codes is not None and value is not None and str(value) in codes:
                value = codes[str(value)]
            raw[ours] = value
        return make_record(raw)

    def row_key(self, row: Mapping[str, Any]) -> str:
        return str(row.get(self.key, ""))[:200]


def _source(raw: Any, where: str) -> Source:
    if not isinstance(raw, dict):
        raise SettingError(f"{where}: a table expected")
    unknown = set(raw) - KNOWN
    if unknown:
        raise SettingError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SettingError(f"{where}: name: 1-64 letters, digits, _ . -")
    where = f"sources[{name}]"
    kind = raw.get("kind", "sql")
    if kind not in ("sql", "webservice", "soap"):
        raise SettingError(f"{where}: kind: sql, webservice or soap")
    soap = {k: raw.get(k, "") for k in ("operation", "patient_operation", "rows")}
    if kind == "soap" and not (isinstance(soap["operation"], str) and IDENT.fullmatch(soap["operation"])):
        raise SettingError(f"{where}: operation: the SOAP operation to poll")
    if not all(isinstance(v, str) and (not v or IDENT.fullmatch(v)) for v in soap.values()):
        raise SettingError(f"{where}: operation, patient_operation, rows: names from the WSDL")
    arguments = raw.get("arguments", {})
    if not isinstance(arguments, dict) or not all(
            k in ("after", "after_key", "limit", "patient_id") and isinstance(v, str) and IDENT.fullmatch(v)
            for k, v in arguments.items()):
        raise SettingError(f"{where}: arguments: after, after_key, limit, patient_id = the service's names")
    url = raw.get("url") or (os.environ.get(raw["url_env"], "") if raw.get("url_env") else "")
    if not isinstance(url, str) or not url:
        raise SettingError(f"{where}: url, or url_env naming a set environment variable")
    columns = raw.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise SettingError(f"{where}: columns: a table of our field = source column")
    for ours, theirs in columns.items():
        if ours not in FIELDS:
            raise SettingError(f"{where}: columns: {ours!r} is not one of our fields ({', '.join(FIELDS)})")
        if not isinstance(theirs, str) or (kind == "sql" and not IDENT.fullmatch(theirs)):
            raise SettingError(f"{where}: columns.{ours}: a column name expected")
    if "patient_id" not in columns:
        raise SettingError(f"{where}: columns.patient_id is required")
    for name_ in ("watermark", "key"):
        value = raw.get(name_)
        if not isinstance(value, str) or not IDENT.fullmatch(value):
            raise SettingError(f"{where}: {name_}: a column name expected")
    table = raw.get("table", "")
    if kind == "sql" and (not isinstance(table, str) or not IDENT.fullmatch(table)):
        raise SettingError(f"{where}: table: the view or table name")
    schema = raw.get("schema", "")
    if schema and not IDENT.fullmatch(str(schema)):
        raise SettingError(f"{where}: schema: a schema name")
    values = raw.get("values", {})
    if not isinstance(values, dict) or not all(k in FIELDS and isinstance(v, dict) for k, v in values.items()):
        raise SettingError(f"{where}: values: tables of source code = our value, per field")
    batch, interval = raw.get("batch", 500), raw.get("interval_seconds", 300)
    if not isinstance(batch, int) or not 1 <= batch <= 100_000:
        raise SettingError(f"{where}: batch: 1-100000 rows")
    if not isinstance(interval, int) or interval < 0:
        raise SettingError(f"{where}: interval_seconds: 0 (on demand only) or seconds")
    return Source(name=name, kind=kind, url=url, table=str(table), schema=str(schema),
                  watermark=raw["watermark"], key=raw["key"], columns=dict(columns),
                  values={k: {str(a): str(b) for a, b in v.items()} for k, v in values.items()},
                  batch=batch, interval_seconds=interval, hospital=str(raw.get("hospital", "default")),
                  issuer=str(raw.get("issuer") or raw.get("hospital") or "default"),
                  token_env=str(raw.get("token_env", "")),
                  timeout_seconds=float(raw.get("timeout_seconds", 30)),
                  operation=soap["operation"], patient_operation=soap["patient_operation"], rows=soap["rows"],
                  arguments=dict(arguments))


def parse_sources(text: str, where: str = "sources") -> list[Source]:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingError(f"{where}: not TOML: {exc}") from None
    unknown = set(raw) - {"sources"}
    if unknown:
        raise SettingError(f"{where}: unknown table(s) {', '.join(sorted(unknown))}; [[sources]] expected")
    out = [_source(s, f"{where}: sources[{i}]") for i, s in enumerate(raw.get("sources", []))]
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise SettingError(f"{where}: two sources share a name")
    return out


def load_sources(path: str | Path) -> list[Source]:
    """The sources of a TOML file (setting `records_sources`); [] for ""."""
    if not path:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingError(f"records_sources: cannot read {path}: {exc.strerror}") from None
    return parse_sources(text, f"records_sources ({path})")


__all__ = ["RecordError", "Source", "load_sources", "parse_sources"]
