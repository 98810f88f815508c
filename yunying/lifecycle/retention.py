"""Retention classes: how long a study must be kept, decided per study by rules (issue 15 part 6).

Medical records rules in China keep outpatient records at least 15 years and inpatient records
at least 30 (医疗机构病历管理规定 2013, art. 29); a hospital may add classes (e.g. "forever").
    [[retention_years]]            # defaults: outpatient 15, inpatient 30
    class = "research"
    years = 50
    [[retention_rules]]            # first match wins; else retention_default
    class = "inpatient"
    when = {AdmissionID = "*"}     # DICOM keywords -> glob patterns on the stored value
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from pydicom.datadict import tag_for_keyword

from yunying.settings import SettingError

if TYPE_CHECKING:
    from yunying.settings import Settings

DEFAULT_YEARS = {"outpatient": 15, "inpatient": 30}


@dataclass(frozen=True)
class Retention:
    """Years per class, the rules that choose a class, and the default class."""

    years: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_YEARS))
    rules: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()  # (class, ((tag hex, glob), ...))
    default: str = "outpatient"

    def classify(self, study_json: dict[str, Any]) -> str:
        """The class of a study from its DICOM JSON (any instance's)."""
        for cls, when in self.rules:
            if all(_matches(study_json, tag, pattern) for tag, pattern in when):
                return cls
        return self.default

    def until(self, cls: str, start: date) -> date:
        """The first day the study may be deleted (start: its study date, else when we received it)."""
        years = self.years[cls]
        try:
            return start.replace(year=start.year + years)
        except ValueError:  # 29 February
            return start.replace(year=start.year + years, day=28)


def _matches(study_json: dict[str, Any], tag: str, pattern: str) -> bool:
    values = (study_json.get(tag) or {}).get("Value") or []
    text = [str(v.get("Alphabetic", "")) if isinstance(v, dict) else str(v) for v in values]
    return any(fnmatch.fnmatchcase(t, pattern) for t in text) if text else pattern == ""


def study_date(study_json: dict[str, Any]) -> date | None:
    """StudyDate (0008,0020) as a date, when it is one."""
    values = (study_json.get("00080020") or {}).get("Value") or []
    try:
        text = str(values[0])
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except (IndexError, ValueError):
        return None


def parse_retention(settings: Settings) -> Retention:
    """The retention tables of the settings; SettingError names the bad entry."""
    years = dict(DEFAULT_YEARS)
    for i, entry in enumerate(settings.retention_years):
        if not (isinstance(entry, dict) and set(entry) == {"class", "years"} and isinstance(entry["class"], str)
                and entry["class"] and isinstance(entry["years"], int) and 0 < entry["years"] <= 200):
            raise SettingError(f"retention_years[{i}]: a table with class (a name) and years (1-200)")
        years[entry["class"]] = entry["years"]
    rules = []
    for i, entry in enumerate(settings.retention_rules):
        where = f"retention_rules[{i}]"
        if not (isinstance(entry, dict) and set(entry) == {"class", "when"} and isinstance(entry["when"], dict)
                and entry["when"]):
            raise SettingError(f"{where}: a table with class and when = {{Keyword = \"pattern\"}}")
        if entry["class"] not in years:
            raise SettingError(f"{where}: unknown class {entry['class']!r} (add it to [[retention_years]])")
        when = []
        for keyword, pattern in entry["when"].items():
            tag = tag_for_keyword(keyword)
            if tag is None or not isinstance(pattern, str):
                raise SettingError(f"{where}: {keyword!r} is not a DICOM keyword with a text pattern")
            when.append((f"{tag:08X}", pattern))
        rules.append((entry["class"], tuple(when)))
    if settings.retention_default not in years:
        raise SettingError(f"retention_default: unknown class {settings.retention_default!r}")
    return Retention(years, tuple(rules), settings.retention_default)
