"""Portal migration 9 on a store made before it (rows in the tables): the unused lockout and
resend columns go, every row keeps its values, and the current code writes the tables again.
On SQLite (DROP COLUMN, and the table rebuild of SQLites before 3.35) and on PostgreSQL."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    select,
)
from sqlalchemy.engine import Engine

from yunying.auth.store import Store, open_store, schema_migrations
from yunying.portal import schema

# the two tables as portal migrations 1-8 left them
v8 = MetaData()
codes_v8 = Table(
    "portal_codes", v8,
    Column("phone_hash", String(64), primary_key=True),
    Column("code_hash", String(64), nullable=False),
    Column("sent_at", Integer, nullable=False),
    Column("expires_at", Integer, nullable=False),
    Column("failures", Integer, nullable=False, default=0),
    Column("locked_until", Integer),
)
exams_v8 = Table(
    "portal_exams", v8,
    Column("id", String(32), primary_key=True),
    Column("hospital_id", String(64), nullable=False),
    Column("study_uid", String(64), nullable=False),
    Column("accession", String(64), nullable=False, default=""),
    Column("capability_id", String(32), nullable=False),
    Column("generation", Integer, nullable=False, default=0),
    Column("phone_hash", String(64)),
    Column("phone_last4", String(4), nullable=False, default=""),
    Column("phone_sealed", Text),
    Column("id_hash", String(64)),
    Column("name_hash", String(64)),
    Column("id_failures", Integer, nullable=False, default=0),
    Column("id_locked_until", Integer),
    Column("delivery_off", Boolean, nullable=False, default=False),
    Column("created_at", Integer, nullable=False),
    UniqueConstraint("hospital_id", "study_uid"),
)
CODES = [{"phone_hash": "a" * 64, "code_hash": "b" * 64, "sent_at": 1_700_000_000, "expires_at": 1_700_000_300,
          "failures": 2, "locked_until": None},
         {"phone_hash": "c" * 64, "code_hash": "d" * 64, "sent_at": 0, "expires_at": 1_700_000_001,
          "failures": 0, "locked_until": 1_700_000_900}]
EXAMS = [{"id": f"e{i}", "hospital_id": "default", "study_uid": f"1.2.3.{i}", "accession": f"A{i}",
          "capability_id": f"c{i}", "generation": i, "phone_hash": "a" * 64, "phone_last4": "8000",
          "phone_sealed": f"sealed-{i}", "id_hash": "f" * 64, "name_hash": None, "id_failures": i,
          "id_locked_until": None, "delivery_off": bool(i % 2), "created_at": 1_700_000_000 + i} for i in range(3)]


def before_migration_9(store: Store) -> None:
    """Make `store` (fully migrated) look like one written before portal migration 9, with rows."""
    with store.engine.begin() as conn:
        schema.codes.drop(conn)
        schema.exams.drop(conn)
        v8.create_all(conn)
        conn.execute(codes_v8.insert(), CODES)
        conn.execute(exams_v8.insert(), EXAMS)
        conn.execute(schema_migrations.delete().where(schema_migrations.c.component == "portal",
                                                      schema_migrations.c.version == 9))


def check_upgrade(store: Store) -> None:
    before_migration_9(store)
    assert store.migrate() == [("portal", 9)]
    engine: Engine = store.engine
    for table, rows in ((schema.codes, CODES), (schema.exams, EXAMS)):
        columns = [c["name"] for c in inspect(engine).get_columns(table.name)]
        assert sorted(columns) == sorted(c.name for c in table.columns)  # exactly today's columns
        assert not set(columns) & set(schema.UNUSED[table.name])
        with engine.connect() as conn:
            kept = [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c[columns[0]]))]
        assert kept == [{k: v for k, v in row.items() if k in columns} for row in rows]  # values intact
    with engine.begin() as conn:  # today's inserts (a NOT NULL sent_at would refuse them) and the constraint
        conn.execute(schema.codes.insert().values(phone_hash="e" * 64, code_hash="f" * 64, expires_at=1))
        conn.execute(schema.exams.insert().values(id="e9", hospital_id="default", study_uid="1.2.3.9",
                                                  capability_id="c9", created_at=1))
    with pytest.raises(Exception, match="(?i)unique"), engine.begin() as conn:
        conn.execute(schema.exams.insert().values(id="e10", hospital_id="default", study_uid="1.2.3.9",
                                                  capability_id="c10", created_at=1))
    assert store.migrate() == []


def test_sqlite_drops_the_unused_columns(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with store.engine.connect() as conn:
        assert schema.sqlite_drops_columns(conn)  # the path a store here takes
    check_upgrade(store)


def test_sqlites_before_3_35_rebuild_the_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path)
    monkeypatch.setattr(schema, "sqlite_drops_columns", lambda conn: False)
    check_upgrade(store)
    assert not [t for t in inspect(store.engine).get_table_names() if t.endswith("_before_rebuild")]


@pytest.fixture
def pg(pg_url: str, tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "data", pg_url)
    yield store
    store.engine.dispose()


def test_postgresql_drops_the_unused_columns(pg: Store) -> None:
    assert pg.engine.dialect.name == "postgresql"
    check_upgrade(pg)
