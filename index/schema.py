"""The index's DuckDB schema: one row per patient, study, series and instance."""
from __future__ import annotations

# Study and series rows carry their own attribute JSON and counters so that a study search
# never scans instances. JSON is orjson text kept as BLOB (bytes out, no decode on /metadata).
# Dates and times are normalized fixed-width strings (see parse.py); PN columns hold the three
# groups lower-cased, *_fz the fuzzy component strings of each group.
V, L, I, B = "VARCHAR", "VARCHAR[]", "INTEGER", "BLOB"
PATIENT = [("patient_id", V), ("issuer", V), ("patient_name", L), ("patient_name_fz", L),
           ("birth_date", V), ("sex", V)]
TABLES: dict[str, list[tuple[str, str]]] = {
    "instances": [
        ("sop", V), ("study", V), ("series", V), ("sop_class", V), ("instance_number", I),
        ("content_date", V), ("content_time", V), ("transfer_syntax", V), ("pixel_form", V),
        ("frames", I), ("size", "BIGINT"), ("digest", V), ("storage_key", V), ("face", V),
        ("source", V), ("institution", V), ("received", "TIMESTAMP"), ("extra", V), ("json", B),
        ("hospital", V), ("department", V), ("seq", "BIGINT")],
    "series": [
        ("uid", V), ("study", V), ("modality", V), ("series_number", I),
        ("series_description", V), ("body_part", V), ("institution", V), ("pps_date", V),
        ("pps_time", V), ("sps_ids", L), ("req_proc_ids", L), ("series_date", V),
        ("series_time", V), ("sop_classes", L), ("n_instances", I), ("rep_sop", V), ("attrs", B),
        ("seq", "BIGINT")],
    "studies": [
        ("uid", V), ("patient_key", V), *PATIENT, ("study_date", V), ("study_time", V),
        ("accession", V), ("referring", L), ("referring_fz", L), ("study_id", V),
        ("study_description", V), ("modalities", L), ("institutions", L), ("sop_classes", L),
        ("n_series", I), ("n_instances", I), ("rep_sop", V), ("attrs", B), ("patient_attrs", B),
        ("hospital", V), ("department", V), ("seq", "BIGINT")],
    "patients": [
        ("key", V), *PATIENT, ("n_studies", I), ("n_series", I), ("n_instances", I),
        ("attrs", B), ("seq", "BIGINT")],
}
TYPES = {table: dict(cols) for table, cols in TABLES.items()}
# ART indexes pay for `column = ?` lookups (DuckDB does not use them for IN lists); the
# series aggregation scans instances.series instead of maintaining a third index on inserts.
INDEXES = {
    "instances_study": "instances (study)",
    "series_study": "series (study)",
    "studies_patient_id": "studies (patient_id)",
    "studies_patient_key": "studies (patient_key)",
    "studies_accession": "studies (accession)",
}
# Columns added since the first schema: an index file of an earlier version gets them, with
# the value its rows take (issue 11: what was stored before hospitals belongs to "default").
# Writes name their columns (write.insert), so the order these land in does not matter.
ADDED = {
    "instances": [("hospital", "'default'"), ("department", "NULL")],
    "studies": [("hospital", "'default'"), ("department", "NULL")],
}


def migrations(existing: dict[str, set[str]]) -> list[str]:
    """ALTER statements adding what an older index file lacks (existing: table -> its columns)."""
    return [f"ALTER TABLE {table} ADD COLUMN {col} {TYPES[table][col]} DEFAULT {default}"
            for table, added in ADDED.items() if table in existing
            for col, default in added if col not in existing[table]]


def statements() -> list[str]:
    """DDL creating the schema when absent."""
    out = []
    for table, cols in TABLES.items():
        body = ", ".join(f"{n} {t}" + (" PRIMARY KEY" if i == 0 else "")
                         for i, (n, t) in enumerate(cols))
        out.append(f"CREATE TABLE IF NOT EXISTS {table} ({body})")
    out += [f"CREATE INDEX IF NOT EXISTS {name} ON {on}" for name, on in INDEXES.items()]
    # Fewer, larger checkpoints: each one rewrites the row groups the study/series/patient
    # delete+insert churn touched. Measured on 30k instances: 16 MB (default) 1,244 rows/s of
    # CPU, 64 MB 1,367-1,534, 256 MB 1,709-1,727; the slowest batch (~4 s) was the same for all.
    out.append("SET checkpoint_threshold = '256MB'")
    return out
