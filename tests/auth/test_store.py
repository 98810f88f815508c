"""The app-state store's migrations: versioned per component, each run once, in order."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, Table, inspect, select, text
from sqlalchemy.engine import Connection

from yunying.auth import store as store_mod
from yunying.auth.store import migration, open_store, schema_migrations

RUNS: list[int] = []
extra = MetaData()
notes = Table("test_component_notes", extra, Column("id", Integer, primary_key=True))


@migration("test_component", 1)
def _notes(conn: Connection) -> None:
    RUNS.append(1)
    extra.create_all(conn)


@migration("test_component", 2)
def _notes_column(conn: Connection) -> None:
    RUNS.append(2)
    conn.execute(text("ALTER TABLE test_component_notes ADD COLUMN body VARCHAR(200)"))


def test_each_components_migrations_run_once_in_order(tmp_path: Path) -> None:
    RUNS.clear()
    store = open_store(tmp_path)
    assert RUNS == [1, 2]
    with store.engine.connect() as conn:
        done = {(r.component, r.version) for r in conn.execute(select(schema_migrations))}
    assert {("auth", 1), ("auth", 2), ("test_component", 1), ("test_component", 2)} <= done
    assert "body" in {c["name"] for c in inspect(store.engine).get_columns("test_component_notes")}
    assert open_store(tmp_path).migrate() == [] and RUNS == [1, 2]


def test_a_store_at_an_older_version_is_brought_up_to_date(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with store.engine.begin() as conn:  # as a store written before auth migration 2 existed
        conn.execute(text("DROP TABLE login_failures"))
        conn.execute(schema_migrations.delete().where(schema_migrations.c.component == "auth",
                                                      schema_migrations.c.version == 2))
    reopened = open_store(tmp_path)
    assert "login_failures" in inspect(reopened.engine).get_table_names()
    with reopened.engine.connect() as conn:
        assert conn.execute(select(schema_migrations.c.version).where(
            schema_migrations.c.component == "auth")).scalars().all() == [1, 2, 3, 4, 5]


def test_registering_two_functions_under_one_version_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="twice"):
        migration("test_component", 1)(lambda conn: None)
    assert store_mod._MIGRATIONS[("test_component", 1)] is _notes
