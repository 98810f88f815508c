"""The index's DuckDB schema: one row per patient, study, series and instance."""
from __future__ import annotations

# Study and series rows carry their own attribute JSON and counters so that a study search
# never scans instances. JSON is orjson text kept as BLOB (bytes out, no decode on /metadata).
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS instances (
        sop VARCHAR PRIMARY KEY, study VARCHAR NOT NULL, series VARCHAR NOT NULL,
        sop_class VARCHAR, instance_number INTEGER, content_date VARCHAR, content_time VARCHAR,
        transfer_syntax VARCHAR, pixel_form VARCHAR, frames INTEGER, size BIGINT, digest VARCHAR,
        storage_key VARCHAR, face VARCHAR, source VARCHAR, institution VARCHAR,
        received TIMESTAMP, extra VARCHAR, json BLOB, seq BIGINT)""",
    "CREATE INDEX IF NOT EXISTS instances_study ON instances (study)",
    "CREATE INDEX IF NOT EXISTS instances_series ON instances (series)",
    """CREATE TABLE IF NOT EXISTS series (
        uid VARCHAR PRIMARY KEY, study VARCHAR NOT NULL, modality VARCHAR, series_number INTEGER,
        series_description VARCHAR, body_part VARCHAR, institution VARCHAR, pps_date VARCHAR,
        pps_time VARCHAR, sps_ids VARCHAR[], req_proc_ids VARCHAR[], series_date VARCHAR,
        series_time VARCHAR, n_instances INTEGER, rep_sop VARCHAR, attrs BLOB, seq BIGINT)""",
    "CREATE INDEX IF NOT EXISTS series_study ON series (study)",
    """CREATE TABLE IF NOT EXISTS studies (
        uid VARCHAR PRIMARY KEY, patient_key VARCHAR, patient_id VARCHAR, issuer VARCHAR,
        patient_name VARCHAR[], patient_name_fz VARCHAR[], birth_date VARCHAR, sex VARCHAR,
        study_date VARCHAR, study_time VARCHAR, accession VARCHAR, referring VARCHAR[],
        referring_fz VARCHAR[], study_id VARCHAR, study_description VARCHAR,
        modalities VARCHAR[], institutions VARCHAR[], sop_classes VARCHAR[], n_series INTEGER,
        n_instances INTEGER, rep_sop VARCHAR, attrs BLOB, seq BIGINT)""",
    "CREATE INDEX IF NOT EXISTS studies_patient_id ON studies (patient_id)",
    "CREATE INDEX IF NOT EXISTS studies_patient_key ON studies (patient_key)",
    "CREATE INDEX IF NOT EXISTS studies_accession ON studies (accession)",
    """CREATE TABLE IF NOT EXISTS patients (
        key VARCHAR PRIMARY KEY, patient_id VARCHAR, issuer VARCHAR, patient_name VARCHAR[],
        patient_name_fz VARCHAR[], birth_date VARCHAR, sex VARCHAR, n_studies INTEGER,
        n_series INTEGER, n_instances INTEGER, attrs BLOB, seq BIGINT)""",
)
