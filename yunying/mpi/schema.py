"""The patient master index's app-state tables (component "mpi").

An identity is one patient record of one system: a PatientID qualified by its issuer (design
rule 6), with the demographics last seen. A person is a set of identities. ID card numbers and
phones are sealed (yunying.pii, context "mpi.id" / "mpi.phone") beside their blind indexes;
names stay in clear because linkage compares them by similarity (the study index keeps them
in clear too). Every move of an identity between persons is an event, so each can be undone.
"""
from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Connection

from yunying.auth.store import migration

meta = MetaData()

persons = Table(
    "mpi_persons", meta,
    Column("id", String(32), primary_key=True),
    Column("created_at", Integer, nullable=False),
)
identities = Table(
    "mpi_identities", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issuer", String(200), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("source", String(64), nullable=False, default=""),  # index | his | ris | hl7 ...
    Column("hospital", String(64), nullable=False, default=""),
    Column("name", String(200), nullable=False, default=""),
    Column("sex", String(2), nullable=False, default=""),
    Column("birth_date", String(8), nullable=False, default=""),
    Column("id_sealed", Text),
    Column("id_blind", String(64)),
    Column("id_invalid", Integer, nullable=False, default=0),  # an ID number was given, its check failed
    Column("phone_sealed", Text),
    Column("phone_blind", String(64)),
    Column("person_id", String(32), nullable=False),
    Column("link", String(16), nullable=False),  # new | id | auto | manual
    Column("score", Float),
    Column("updated_at", Integer, nullable=False),
    UniqueConstraint("issuer", "patient_id"),
    Index("mpi_identities_person", "person_id"),
    Index("mpi_identities_id_blind", "id_blind"),
    Index("mpi_identities_phone_blind", "phone_blind"),
    Index("mpi_identities_birth", "birth_date"),
)
reviews = Table(  # a candidate link between two thresholds, waiting for a person to decide
    "mpi_reviews", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("identity_id", Integer, nullable=False),
    Column("person_id", String(32), nullable=False),  # the candidate person
    Column("score", Float, nullable=False),
    Column("levels", String(200), nullable=False, default=""),  # name=exact,sex=exact ... (no values)
    Column("status", String(10), nullable=False, default="open"),  # open | linked | rejected
    Column("created_at", Integer, nullable=False),
    Column("decided_by", String(64)),
    Column("decided_at", Integer),
    UniqueConstraint("identity_id", "person_id"),
)
events = Table(  # every link and unlink, automatic or by hand
    "mpi_events", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Integer, nullable=False),
    Column("actor", String(64), nullable=False),  # "mpi" for automatic links, else the principal
    Column("action", String(16), nullable=False),  # create | link | unlink | revert
    Column("identity_id", Integer, nullable=False),
    Column("from_person", String(32)),
    Column("to_person", String(32), nullable=False),
    Column("link", String(16), nullable=False),
    Column("score", Float),
    Column("reason", String(200), nullable=False, default=""),
    Column("reverted_by", Integer),
)
codes = Table(  # a hospital's exam item code mapped to the standard code table
    "mpi_exam_codes", meta,
    Column("hospital", String(64), primary_key=True),
    Column("local_code", String(64), primary_key=True),
    Column("local_name", String(200), nullable=False, default=""),
    Column("standard_code", String(64), nullable=False),
    Column("standard_name", String(200), nullable=False, default=""),
    Column("updated_at", Integer, nullable=False),
)


@migration("mpi", 1)
def create_mpi_tables(conn: Connection) -> None:
    meta.create_all(conn, tables=[persons, identities, reviews, events, codes])


@migration("mpi", 2)
def index_names(conn: Connection) -> None:
    # candidates are also blocked on the same name: without an index that is a full scan per
    # new identity once a regional registry holds millions
    conn.execute(text("CREATE INDEX IF NOT EXISTS mpi_identities_name ON mpi_identities (name)"))
