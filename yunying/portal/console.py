"""The delivery console's figures (issue 14 part 9): what was collected (exams, images, reports)
per day, hospital and modality, what was delivered (exam QR codes, exams bound to patients,
shares), and storage used. Counts only: the operator sees no patient data."""
from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, String, Table, func, insert, select, update
from sqlalchemy.engine import Connection

from index.query import Match, Query
from yunying.archive import Archive
from yunying.auth.schema import capability_tokens
from yunying.auth.store import Store, migration
from yunying.portal.exams import made_by_patients
from yunying.portal.schema import bindings, exams

REPORT_CLASSES = ("1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.88.11",
                  "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33")


meta = MetaData()
storage_samples = Table(  # the storage used, one sample per day (the last figure of the day)
    "portal_storage_samples", meta,
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD (UTC)
    Column("dicom_bytes", BigInteger, nullable=False),
    Column("total_bytes", BigInteger, nullable=False),
    Column("at", BigInteger, nullable=False),
)


@migration("portal", 6)
def create_storage_samples(conn: Connection) -> None:
    meta.create_all(conn)


def sample_storage(store: Store, dicom_bytes: int, total_bytes: int, now: float | None = None) -> list[dict[str, Any]]:
    """Record today's storage figures; answers every day's, oldest first (storage over time)."""
    now = time.time() if now is None else now
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    values = {"dicom_bytes": dicom_bytes, "total_bytes": total_bytes, "at": int(now)}
    with store.engine.begin() as conn:
        if conn.execute(update(storage_samples).where(storage_samples.c.day == day).values(**values)).rowcount == 0:
            conn.execute(insert(storage_samples).values(day=day, **values))
        return [{"day": r.day, "dicom_bytes": r.dicom_bytes, "total_bytes": r.total_bytes}
                for r in conn.execute(select(storage_samples).order_by(storage_samples.c.day))]


def _v(json: dict[str, Any], tag: str) -> Any:
    return (json.get(tag, {}).get("Value") or [None])[0]


def _folder_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass  # removed while walking
    return total


def stats(archive: Archive, store: Store, data: Path) -> dict[str, Any]:
    """Exams, images and reports per day (StudyDate), hospital (the study's origin) and modality."""
    studies = list(archive.search(Query("STUDY", includefields={"00080061", "00201208", "00080020"})))
    per_day: Counter[str] = Counter()
    per_hospital: Counter[str] = Counter()
    per_modality: Counter[str] = Counter()
    images_by: dict[str, Counter[str]] = {"day": Counter(), "hospital": Counter(), "modality": Counter()}
    reports_by: dict[str, Counter[str]] = {"day": Counter(), "hospital": Counter()}
    where: dict[str, tuple[str, str]] = {}  # study -> (day, hospital)
    dicom_bytes = images = 0
    for s in studies:
        uid, day = _v(s, "0020000D"), str(_v(s, "00080020") or "unknown")
        owner = archive.owner(uid)
        hospital = owner[0] if owner else "unknown"
        where[uid] = (day, hospital)
        count = int(_v(s, "00201208") or 0)
        per_day[day] += 1
        per_hospital[hospital] += 1
        for m in (s.get("00080061", {}).get("Value") or []):
            per_modality[m] += 1
        images_by["day"][day] += count
        images_by["hospital"][hospital] += count
        images += count
        dicom_bytes += sum(r.size for r in archive.instances(uid))
    for series in archive.search(Query("SERIES", includefields={"00201209"})):
        images_by["modality"][str(_v(series, "00080060") or "unknown")] += int(_v(series, "00201209") or 0)
    reports = list(archive.search(Query("IMAGE", [Match("00080016", "list", REPORT_CLASSES)])))
    for r in reports:
        day, hospital = where.get(_v(r, "0020000D"), ("unknown", "unknown"))
        reports_by["day"][day] += 1
        reports_by["hospital"][hospital] += 1
    with store.engine.connect() as conn:
        qr = conn.execute(select(func.count()).select_from(exams)).scalar_one()
        off = conn.execute(select(func.count()).select_from(exams).where(exams.c.delivery_off.is_(True))).scalar_one()
        bound = conn.execute(select(func.count(func.distinct(bindings.c.exam_id)))).scalar_one()
        shared = conn.execute(select(func.count()).select_from(capability_tokens).where(
            capability_tokens.c.kind == "share", made_by_patients(capability_tokens.c.created_by))).scalar_one()
    total = _folder_bytes(data)
    return {"exams": len(studies), "images": images, "reports": len(reports),
            "per_day": dict(sorted(per_day.items())), "images_per_day": dict(sorted(images_by["day"].items())),
            "reports_per_day": dict(sorted(reports_by["day"].items())),
            "per_hospital": dict(per_hospital), "images_per_hospital": dict(images_by["hospital"]),
            "reports_per_hospital": dict(reports_by["hospital"]),
            "per_modality": dict(per_modality), "images_per_modality": dict(images_by["modality"]),
            "delivery": {"qr_codes": qr, "bound_to_patients": bound, "delivery_off": off, "patient_shares": shared},
            "storage": {"dicom_bytes": dicom_bytes, "total_bytes": total,
                        "history": sample_storage(store, dicom_bytes, total)}}
