"""Source PACS of the Q/R collectors, as configured ([[collect_sources]] in yunying.toml)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from croniter import croniter

from yunying.settings import SettingError, check_aet

if TYPE_CHECKING:
    from yunying.settings import Settings

FIELDS = {"name", "aet", "host", "port", "retrieve", "schedule", "window_days", "backfill_days",
          "concurrency", "bandwidth_mbit", "hospital", "timeout", "calling_aet", "enabled", "batch_studies"}


@dataclass(frozen=True)
class Source:
    """One source PACS and how we collect from it."""

    name: str  # our name for it: jobs, checkpoints, CLI and API
    aet: str  # its AE title (the called AE)
    host: str
    port: int
    retrieve: str = "move"  # "move": C-MOVE to our SCP; "get": C-GET on our association
    schedule: tuple[str, ...] = ()  # cron expressions (minute hour day month weekday), local time
    window_days: int = 1  # a scheduled run looks at today and the days before it
    backfill_days: int = 30  # how far back a backfill walks when not told
    concurrency: int = 2  # associations open to the source at once, at most
    batch_studies: int = 16  # studies we hold nothing of, retrieved by one UID-list C-MOVE/C-GET; 1: one each
    bandwidth_mbit: float = 0.0  # average retrieve rate at most (megabits/s); 0: no limit
    hospital: str = "default"  # owner of what C-GET brings in (C-MOVE: the peer entry's hospital)
    timeout: float = 30.0  # seconds: ACSE, DIMSE and network timeouts of every association
    calling_aet: str = ""  # our AE title towards it ("" = settings.aet, also the C-MOVE destination)
    enabled: bool = True

    @property
    def bandwidth_bytes(self) -> float:
        return self.bandwidth_mbit * 1e6 / 8


def _want(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise SettingError(f"{where}: {what}")


def parse_source(raw: Any, where: str) -> Source:
    """A Source from one [[collect_sources]] table; SettingError names the bad field."""
    _want(isinstance(raw, dict), where, "expected a table")
    unknown = set(raw) - FIELDS
    _want(not unknown, where, f"unknown field(s) {', '.join(sorted(unknown))}")
    name = raw.get("name")
    _want(isinstance(name, str) and name.replace("-", "").replace("_", "").isalnum() and len(name) <= 64,
          where, "name: letters, digits, - and _ (at most 64)")
    check_aet(f"{where}.aet", raw.get("aet"))
    _want(isinstance(raw.get("host"), str) and bool(raw["host"]), where, "host: a host name or address")
    port = raw.get("port")
    _want(isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536, where, "port: 1-65535")
    _want(raw.get("retrieve", "move") in ("move", "get"), where, 'retrieve: "move" or "get"')
    schedule = raw.get("schedule", [])
    schedule = [schedule] if isinstance(schedule, str) else schedule
    _want(isinstance(schedule, list), where, "schedule: a cron expression or a list of them")
    for expr in schedule:
        _want(isinstance(expr, str) and croniter.is_valid(expr) and len(expr.split()) == 5, where,
              f"schedule: {expr!r} is not a 5-field cron expression (e.g. \"0 7,12,18 * * *\")")
    for key, low in (("window_days", 0), ("backfill_days", 1), ("concurrency", 1), ("batch_studies", 1)):
        value = raw.get(key, getattr(Source, key))
        _want(isinstance(value, int) and not isinstance(value, bool) and value >= low, where,
              f"{key}: an integer >= {low}")
    for key in ("bandwidth_mbit", "timeout"):
        value = raw.get(key, getattr(Source, key))
        _want(isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0, where,
              f"{key}: a number >= 0")
    _want(raw.get("timeout", 1) > 0, where, "timeout: seconds, more than 0")
    _want(isinstance(raw.get("hospital", "default"), str) and raw.get("hospital", "default") != "", where,
          "hospital: a hospital id")
    if raw.get("calling_aet"):
        check_aet(f"{where}.calling_aet", raw["calling_aet"])
    _want(isinstance(raw.get("enabled", True), bool), where, "enabled: true or false")
    values = dict(raw)
    values["schedule"] = tuple(schedule)
    values["timeout"] = float(values.get("timeout", Source.timeout))
    values["bandwidth_mbit"] = float(values.get("bandwidth_mbit", 0.0))
    return Source(**values)


def parse_sources(raw: Any) -> list[Source]:
    """Every configured source; names are unique."""
    _want(isinstance(raw, list), "collect_sources", "a list of tables ([[collect_sources]])")
    sources = [parse_source(entry, f"collect_sources[{i}]") for i, entry in enumerate(raw)]
    names = [s.name for s in sources]
    _want(len(names) == len(set(names)), "collect_sources", "two sources have the same name")
    return sources


def check_collect(settings: Settings) -> None:
    """Validate the collection and lifecycle settings (called by Settings.validate)."""
    parse_sources(settings.collect_sources)
    from yunying.lifecycle.retention import (
        parse_retention,  # the retention tables have their own parser
    )

    parse_retention(settings)
    _want(isinstance(settings.delivery_cache_bytes, int) and settings.delivery_cache_bytes >= 0,
          "delivery_cache_bytes", "0 (off) or a size in bytes")
    _want(0 < settings.cache_low_water < settings.cache_high_water <= 100, "cache_high_water/cache_low_water",
          "percentages with 0 < low < high <= 100")
    _want(isinstance(settings.cache_check_s, int) and settings.cache_check_s >= 1, "cache_check_s",
          "seconds, at least 1")
    _want(isinstance(settings.refetch_wait_s, int) and 0 <= settings.refetch_wait_s <= 300, "refetch_wait_s",
          "0-300 seconds")
