"""Settings: defaults < config file (TOML) < environment (YUNYING_*) < command-line flags."""
from __future__ import annotations

import codecs
import ipaddress
import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class SettingError(ValueError):
    """A bad setting: the message names it and says what is expected."""


@dataclass
class Settings:
    """Everything `yunying serve` can be told; each field is documented in the README."""

    data: Path = Path("./yunying-data")
    host: str = "127.0.0.1"
    http_port: int = 8080
    dimse_port: int = 11112
    aet: str = "YUNYING"
    peers: dict[str, tuple[str, int]] = field(default_factory=dict)
    dimse_accept_all: bool = False  # let any calling AE store/query/retrieve, not only known peers
    dimse_lean_store: bool = True  # storage associations' P-DATA read by dimse/fastrecv.py, not pynetdicom
    dimse_lend_workers: bool = False  # such an association served by an ingest worker of its own (issue 9; off: slower on a quiet machine, README)
    issuer_hospitals: dict[str, str] = field(default_factory=dict)  # IssuerOfPatientID -> hospital (issue 11)
    cors_origins: list[str] = field(default_factory=list)
    max_upload_bytes: int = 8 * 1024**3
    qido_max_results: int = 10_000
    log_level: str = "info"
    durability: str = "group"  # "group": one syncfs per group of writes (Linux); "file": fsync every file
    ingest_processes: int = -1  # worker processes that parse and write received instances; -1: one per CPU (max 4); 0: none
    ingest_inline_bytes: int = 65536  # instances smaller than this are written in the server even when stores overlap; 0: all go to workers then
    dimse_inline_bytes: int = -1  # the same for C-STORE; -1: 16 MiB on 1-2 CPUs (a CT slice costs less CPU there than its hand-off), else ingest_inline_bytes
    render_cache_mb: int = 64  # rendered images and thumbnails kept in memory
    mpr_cache_mb: int = 1024  # decoded slices kept for server-side reformats (MPR / MIP), in temporary files
    compress_frames: bool = True  # Content-Encoding for octet-stream frames and bulk data (JSON/XML always)
    # identity and access (issue 11): the app-state database and provisioned API keys
    app_database: str = ""  # SQLAlchemy URL; "" = SQLite at <data>/app.sqlite
    api_key: str = field(default="", repr=False)  # YUNYING_API_KEY: full-scope key of the default hospital
    api_keys: list[dict[str, Any]] = field(default_factory=list, repr=False)  # [[api_keys]] name, key|key_env, scopes, hospital
    # OAuth 2.0 / OpenID Connect provider (yunying/auth/oidc, README "Logging in with OpenID Connect")
    oidc_issuer: str = ""  # public base URL of the archive; default http://host:http_port
    oidc_key_dir: str = ""  # folder of the token signing keys (PEM, 0600); default <data>/keys/oidc
    oidc_access_token_minutes: int = 10  # at most 15
    oidc_refresh_token_hours: int = 12
    oidc_trusted_issuers: list[dict[str, Any]] = field(default_factory=list)  # hospitals' own providers
    # audit trail (issue 12, README "Audit trail")
    audit: bool = True  # record every access to patient data and every security event
    audit_retention_days: int = 180  # records older than this may be purged (at least 180)
    audit_syslog: str = ""  # tls://collector:6514: forward every record (RFC 5424 over TLS)
    audit_syslog_ca: str = ""  # CA file the collector's certificate is checked against (else the system's)
    # transport security (issue 12 part 7, README "TLS")
    tls_cert: str = ""  # PEM certificate (chain): HTTPS on http_port, and DICOM TLS on dimse_tls_port
    tls_key: str = field(default="", repr=False)  # its PEM private key
    dimse_tls_port: int = 0  # DICOM TLS port of the SCP (PS3.15 B.9; 2762 is registered); 0: none
    tls_client_ca: str = ""  # CA file: DICOM TLS peers must present a certificate it signed
    frame_ancestors: list[str] = field(default_factory=list)  # origins that may frame our pages (CSP)
    rate_limit: int = 0  # requests per second per principal (burst: 10 s worth); 0: no limit
    # collection and lifecycle (issue 15 parts 1 and 6, README "Collection")
    collect_sources: list[dict[str, Any]] = field(default_factory=list)  # [[collect_sources]] source PACS
    retention_years: list[dict[str, Any]] = field(default_factory=list)  # [[retention_years]] class, years
    retention_rules: list[dict[str, Any]] = field(default_factory=list)  # [[retention_rules]] class, when
    retention_default: str = "outpatient"  # the class of a study no rule matches
    delivery_cache_bytes: int = 0  # delivery cache: bytes the collected studies may fill; 0: no purge
    cache_high_water: int = 90  # percent of delivery_cache_bytes that starts a purge
    cache_low_water: int = 75  # percent the purge goes down to
    cache_check_s: int = 60  # how often the delivery cache compares its size with the high-water mark
    refetch_wait_s: int = 20  # how long a request for a purged study waits for its re-fetch before a 503
    # personal data at rest (issue 12 part 6, yunying/pii.py): the sealing keys, outside the data folder
    pii_key_file: str = ""  # "": env YUNYING_PII_KEYS, else <data>.pii.key beside the data folder
    # the patient portal (issue 14, README "The patient portal"): report notifications
    portal_notify_seconds: int = 30  # how often released reports of bound exams are looked for; 0: never
    # hospital records (issue 15 parts 2-4, README "Hospital records: databases, web services, HL7")
    records_sources: str = ""  # TOML file of [[sources]]: database views / web services and their mappings
    records_match_seconds: int = 300  # how often new studies are matched to exams; 0: on demand only
    hl7_port: int = 0  # MLLP listener for HL7 v2 (2575 is usual); 0: none
    hl7_hospital: str = "default"  # the hospital HL7 messages belong to
    hl7_issuer: str = ""  # assigning authority of their patient IDs when PID-3 names none ("": hl7_hospital)
    hl7_charset: str = "utf-8"  # decoding of messages without MSH-18 (gb18030 for many HIS)
    hl7_allow: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])  # addresses / networks that may send
    # patient master index and routing (issue 15 parts 5 and 7, README "Patient master index", "Routing")
    mpi: bool = True  # feed the master index from every stored instance's patient
    mpi_link_upper: int = 20  # Fellegi-Sunter weight (bits) at or above which a candidate links automatically
    mpi_link_lower: int = 12  # ... at or above which (and below upper) it waits in the review queue
    routing_attempts: int = 8  # tries of one forward before it is marked failed (retry by hand)
    routing_backoff_seconds: int = 5  # wait before the first retry; doubled each time, at most an hour

    def validate(self) -> Settings:
        """Raise SettingError naming the first bad value."""
        for name in ("http_port", "dimse_port"):
            port = getattr(self, name)
            if not isinstance(port, int) or not 0 <= port <= 65535:
                raise SettingError(f"{name}: {port!r} is not a TCP port (0-65535)")
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            if self.host != "localhost":
                raise SettingError(f"host: {self.host!r} is not an IP address to bind") from None
        check_aet("aet", self.aet)
        for aet, addr in self.peers.items():
            check_aet(f"peers[{aet}]", aet)
            if not (isinstance(addr, (list, tuple)) and len(addr) == 2 and isinstance(addr[1], int)):
                raise SettingError(f"peers[{aet}]: expected [\"host\", port], got {addr!r}")
        if self.max_upload_bytes <= 0:
            raise SettingError("max_upload_bytes: must be positive")
        if self.qido_max_results <= 0:
            raise SettingError("qido_max_results: must be positive")
        for name in ("render_cache_mb", "mpr_cache_mb"):
            if getattr(self, name) < 0:
                raise SettingError(f"{name}: must be 0 or more (MiB)")
        if not isinstance(self.ingest_processes, int) or self.ingest_processes < -1:
            raise SettingError(f"ingest_processes: {self.ingest_processes!r} is not -1 (auto), 0 or a count")
        if not isinstance(self.ingest_inline_bytes, int) or self.ingest_inline_bytes < 0:
            raise SettingError(f"ingest_inline_bytes: {self.ingest_inline_bytes!r} is not 0 (off) or a size in bytes")
        if not isinstance(self.dimse_inline_bytes, int) or self.dimse_inline_bytes < -1:
            raise SettingError(f"dimse_inline_bytes: {self.dimse_inline_bytes!r} is not -1 (auto), 0 (off) or a size in bytes")
        if self.durability not in {"group", "file"}:
            raise SettingError(f"durability: {self.durability!r} is not group|file")
        if self.audit_syslog and not self.audit_syslog.startswith(("tls://", "tcp://")):
            raise SettingError(f"audit_syslog: {self.audit_syslog!r} is not tls://host:port")
        if not isinstance(self.rate_limit, int) or self.rate_limit < 0:
            raise SettingError(f"rate_limit: {self.rate_limit!r} is not 0 (off) or requests per second")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SettingError("tls_cert and tls_key: give both (PEM files) or neither")
        if self.dimse_tls_port and not self.tls_cert:
            raise SettingError("dimse_tls_port: needs tls_cert and tls_key")
        if not isinstance(self.dimse_tls_port, int) or not 0 <= self.dimse_tls_port <= 65535:
            raise SettingError(f"dimse_tls_port: {self.dimse_tls_port!r} is not a TCP port (0-65535)")
        if not isinstance(self.audit_retention_days, int) or self.audit_retention_days < 180:
            raise SettingError("audit_retention_days: at least 180 (GB/T 22239-2019 8.1.4.3: six months)")
        if not isinstance(self.hl7_port, int) or not 0 <= self.hl7_port <= 65535:
            raise SettingError(f"hl7_port: {self.hl7_port!r} is not a TCP port (0-65535)")
        if not isinstance(self.records_match_seconds, int) or self.records_match_seconds < 0:
            raise SettingError("records_match_seconds: 0 (on demand) or seconds")
        for net in self.hl7_allow:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise SettingError(f"hl7_allow: {net!r} is not an address or network (10.1.0.0/16)") from None
        try:
            codecs.lookup(self.hl7_charset)
        except LookupError:
            raise SettingError(f"hl7_charset: {self.hl7_charset!r} is not a character set (utf-8, gb18030)") from None
        if not 0 < self.mpi_link_lower <= self.mpi_link_upper:
            raise SettingError("mpi_link_lower, mpi_link_upper: need 0 < lower <= upper (bits)")
        if self.routing_attempts < 1 or self.routing_backoff_seconds < 0:
            raise SettingError("routing_attempts: at least 1; routing_backoff_seconds: 0 or more")
        check_api_keys(self.api_keys)
        from yunying.collect.config import check_collect  # here: it imports this module
        check_collect(self)
        if self.api_key and len(self.api_key) < 16:
            raise SettingError("api_key: at least 16 characters (YUNYING_API_KEY)")
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            raise SettingError(f"log_level: {self.log_level!r} is not debug|info|warning|error")
        return self

    def dimse_inline(self) -> int:
        """dimse_inline_bytes resolved: on 1-2 CPUs a C-STORE'd CT slice written in the server
        cost ~2.2-2.8 ms of CPU in all, against ~3.5-4.3 handed to a worker (the hand-off file,
        the pipe, the wake-ups of two processes; benchmarks.ingest --ab, issue 9), and total CPU
        is what sets the rate there; with more CPUs the workers parse in parallel."""
        if self.dimse_inline_bytes >= 0:
            return self.dimse_inline_bytes
        return 16 << 20 if (os.cpu_count() or 1) <= 2 else self.ingest_inline_bytes

    def ingest_workers(self) -> int:
        """How many ingest worker processes to run (ingest_processes resolved)."""
        if self.ingest_processes >= 0:
            return self.ingest_processes
        return min(4, os.cpu_count() or 1)


def check_api_keys(keys: Any) -> None:
    """[[api_keys]] entries: name, key (or key_env naming an environment variable), scopes, hospital."""
    if not isinstance(keys, list):
        raise SettingError("api_keys: expected a list of tables ([[api_keys]] in the config file)")
    for i, entry in enumerate(keys):
        where = f"api_keys[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise SettingError(f"{where}: a table with a name")
        unknown = set(entry) - {"name", "key", "key_env", "scopes", "hospital"}
        if unknown:
            raise SettingError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if not isinstance(entry.get("key", entry.get("key_env")), str):
            raise SettingError(f"{where}: key or key_env (an environment variable holding the key)")
        scopes = entry.get("scopes")
        if not isinstance(scopes, list) or not scopes or not all(isinstance(x, str) for x in scopes):
            raise SettingError(f"{where}: scopes, a list such as [\"dicomweb.read\"]")
        if not isinstance(entry.get("hospital", ""), str):
            raise SettingError(f"{where}: hospital must be a string")


def check_aet(name: str, aet: str) -> None:
    """PS3.5 Table 6.2-1, AE: 1-16 characters, no backslash or control characters, not all spaces."""
    if not isinstance(aet, str) or not 0 < len(aet) <= 16 or not aet.strip():
        raise SettingError(f"{name}: AE title must be 1-16 characters, got {aet!r}")
    if any(c == "\\" or ord(c) < 0x20 or ord(c) > 0x7E for c in aet):
        raise SettingError(f"{name}: AE title has a forbidden character: {aet!r}")


def load_peers(path: str | Path) -> dict[str, tuple[str, int]]:
    """Read a peers file: {"AET": ["host", port], ...}."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingError(f"peers: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise SettingError(f"peers: {path} is not JSON: {exc}") from None
    return _peers(raw, f"peers ({path})")


def _peers(raw: Any, name: str) -> dict[str, tuple[str, int]]:
    if not isinstance(raw, dict):
        raise SettingError(f'{name}: expected an object {{"AET": ["host", port]}}')
    from yunying.peers import parse_peer  # here: yunying.peers -> yunying.auth -> this module

    out: dict[str, tuple[str, int]] = {}
    for aet, addr in raw.items():
        peer = parse_peer(addr)  # yunying.peers: the short form, or one with a hospital
        if peer is None:
            raise SettingError(f'{name}: {aet}: expected ["host", port] or {{"host": "...", "port": N, '
                               f'"hospital": "...", "department": "...", "see": [...] | "all"}}, got {addr!r}')
        out[aet] = peer
    return out


def _names(raw: Any, name: str) -> dict[str, str]:
    """A table of names to names ({"ISSUER": "hospital"}): keys and values non-empty strings."""
    if not isinstance(raw, dict) or not all(isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip()
                                            for k, v in raw.items()):
        raise SettingError(f'{name}: expected a table of names, e.g. {{"ISSUER": "hospital"}}')
    return {k.strip(): v.strip() for k, v in raw.items()}


def _coerce(name: str, kind: Any, value: Any) -> Any:
    text = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if "Path" in text:
            return Path(value)
        if text == "int":
            return int(value)
        if text == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in {"1", "true", "yes", "on"}:
                return True
            if str(value).lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if text.startswith("list[dict"):  # tables in TOML, a JSON array in the environment
            parsed = json.loads(value) if isinstance(value, str) else value
            if not isinstance(parsed, list):
                raise ValueError(value)
            return parsed
        if text.startswith("list"):
            return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
        if text == "dict[str, str]":
            return _names(json.loads(value) if isinstance(value, str) else value, name)
        if text.startswith("dict"):
            return _peers(json.loads(value) if isinstance(value, str) else value, name)
        return str(value)
    except (TypeError, ValueError):
        raise SettingError(f"{name}: {value!r} is not a valid {text}") from None


def load_settings(config: str | Path | None = None, overrides: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Merge the config file, YUNYING_* environment variables and explicit overrides."""
    environ = dict(os.environ) if environ is None else environ
    kinds = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}
    config = config or environ.get("YUNYING_CONFIG")
    if config:
        try:
            raw = tomllib.loads(Path(config).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingError(f"config: cannot read {config}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingError(f"config: {config} is not TOML: {exc}") from None
        for key, value in raw.items():
            if key not in kinds:
                raise SettingError(f"config: unknown setting {key!r} in {config}")
            values[key] = _coerce(key, kinds[key], value)
    for key, kind in kinds.items():
        env = environ.get(f"YUNYING_{key.upper()}")
        if env is not None:
            values[key] = _coerce(f"YUNYING_{key.upper()}", kind, env)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, kinds[key], value) if key != "peers" else value
    return Settings(**values).validate()
