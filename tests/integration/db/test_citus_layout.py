"""The Citus layout (app/db/citus.py) against the real schema on plain PostgreSQL: every table has a place, the keys
of the sharded tables lead with their distribution column, the plan is in the order Citus takes it, and
`memora db distribute` without Citus refuses and changes nothing. tests/integration/citus/ runs it on a cluster."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from app.db import citus
from tests.schema import SCHEMA, q


def _catalog(conn: Any, query: str) -> list[tuple[Any, ...]]:
    return list(conn.execute(query, (SCHEMA,)).fetchall())


def _constraints(conn: Any) -> list[tuple[str, str, str, list[str], str | None, list[str] | None, str]]:
    """(table, name, type, columns, referenced table, referenced columns, on delete) of SCHEMA's keys."""
    return _catalog(
        conn,
        """
        SELECT t.relname, k.conname, k.contype,
               ARRAY(SELECT attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
                     JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i)::text[],
               r.relname,
               ARRAY(SELECT attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
                     JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i)::text[],
               k.confdeltype::text
        FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid LEFT JOIN pg_class r ON r.oid = k.confrelid
        WHERE k.connamespace = %s::regnamespace AND k.contype IN ('p', 'u', 'f') AND k.conparentid = 0
          AND NOT t.relispartition
        ORDER BY 1, 2
        """,
    )


@pytest.fixture
def conn(fresh_db_url: str) -> Any:
    with psycopg.connect(fresh_db_url, autocommit=True) as connection:
        yield connection


def test_every_table_and_trigger_has_a_place(conn: Any) -> None:
    tables = {
        r[0]
        for r in _catalog(
            conn,
            "SELECT relname FROM pg_class WHERE relnamespace = %s::regnamespace "
            "AND relkind IN ('r', 'p') AND NOT relispartition",
        )
    }
    assert tables == set(citus.TABLES)  # a new table needs a place; a stale entry is a mistake too
    triggers = {
        r[0]
        for r in _catalog(
            conn,
            "SELECT g.tgname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
            "WHERE c.relnamespace = %s::regnamespace AND NOT g.tgisinternal "
            "AND g.tgparentid = 0 AND NOT c.relispartition",
        )
    }
    assert triggers == set(citus.TRIGGERS)
    functions = {r[0] for r in _catalog(conn, "SELECT proname FROM pg_proc WHERE pronamespace = %s::regnamespace")}
    assert set(citus.FUNCTIONS) <= functions


def test_an_unclassified_table_is_an_error(conn: Any) -> None:
    conn.execute(q("CREATE TABLE memora.newcomer (id bigint PRIMARY KEY)"))

    with pytest.raises(citus.DistributeError, match="newcomer"):
        citus.plan(conn, SCHEMA)


def test_sharded_tables_keys_include_their_distribution_column(conn: Any) -> None:
    checked = 0
    for table, name, kind, columns, target, target_columns, on_delete in _constraints(conn):
        group = citus.TABLES[table]
        if group not in citus.GROUPS:
            continue
        column = citus.GROUPS[group][0]
        if kind in ("p", "u"):
            assert column in columns, f"{name}: Citus enforces it only with {column} in it"
            checked += 1
            continue
        fk = citus.ForeignKey(name, table, target or "", False, "")
        if not citus.allowed(fk):
            continue  # dropped by the plan (test_the_plan_drops_exactly_the_keys_citus_refuses)
        if citus.TABLES[fk.target] == group:
            assert target_columns is not None
            assert column in columns, f"{name} crosses shards"
            assert target_columns[columns.index(column)] == column, f"{name} crosses shards"
        else:
            assert citus.TABLES[fk.target] == "reference", name
        assert not (on_delete in ("n", "d") and column in columns), f"{name} would set {column} to NULL"
        checked += 1
    assert checked >= 20


def test_the_plan_drops_exactly_the_keys_citus_refuses(conn: Any) -> None:
    dropped = {fk.name for fk in citus.foreign_keys(conn, SCHEMA) if not citus.allowed(fk)}

    # Each needs its line in docs/scaling.md: what replaces it under Citus.
    assert dropped == {
        "fk_embedding_collection_id_chunk_id_chunk",
        "fk_example_source_collection_id_source_chunk_id_chunk",
        "fk_example_source_collection_id_source_document_id_document",
    }


def _position(statements: list[str], pattern: str) -> int:
    found = [i for i, s in enumerate(statements) if re.search(pattern, s)]
    assert len(found) == 1, pattern
    return found[0]


def test_the_plan_is_in_dependency_order(conn: Any) -> None:
    statements = [step.statement for step in citus.plan(conn, SCHEMA)]

    def made(table: str) -> int:
        return _position(statements, rf"create_(reference|distributed)_table\('{SCHEMA}\.{table}'")

    first_table = min(made(t) for t, kind in citus.TABLES.items() if kind != "local")
    assert all(made(t) >= first_table for t, kind in citus.TABLES.items() if kind != "local")
    for t, kind in citus.TABLES.items():
        if kind == "local":
            assert not any(f"'{SCHEMA}.{t}'" in s for s in statements), f"{t} stays on the coordinator"
    for fk in citus.foreign_keys(conn, SCHEMA):
        if not citus.allowed(fk):
            assert _position(statements, rf"DROP CONSTRAINT \"{fk.name}\"") < first_table
        elif fk.deferrable:  # set aside, back when both ends are Citus tables
            assert _position(statements, rf"DROP CONSTRAINT \"{fk.name}\"") < first_table
            assert _position(statements, rf"ADD CONSTRAINT \"{fk.name}\"") > max(made(fk.table), made(fk.target))
        elif fk.table != fk.target and citus.TABLES[fk.table] != "local":
            assert made(fk.target) < made(fk.table), f"{fk.name}: {fk.target} must be a Citus table first"
    for kind, (column, anchor) in citus.GROUPS.items():
        assert f"'{column}', colocate_with := 'none'" in statements[made(anchor)]
        for t in (t for t, k in citus.TABLES.items() if k == kind and t != anchor):
            assert made(anchor) < made(t)
            assert f"colocate_with := '{SCHEMA}.{anchor}'" in statements[made(t)]
    delegated = [s for s in statements if "distribution_arg_name" in s]
    assert len(delegated) == sum(1 for a in citus.FUNCTIONS.values() if a)
    assert all(_position(statements, re.escape(s)) > first_table for s in delegated)
    assert statements[0] == "SET citus.enable_unsafe_triggers TO on"


def test_guarded_triggers_fire_on_the_coordinator_only(conn: Any) -> None:
    """The rewritten reference-table triggers are valid and still do their work where the guard holds (a stand-in
    for Citus's citus_is_coordinator() decides here)."""
    conn.execute("CREATE FUNCTION public.citus_is_coordinator() RETURNS bool LANGUAGE sql AS 'SELECT true'")
    guards = [s for s in citus.plan(conn, SCHEMA) if citus.GUARD in s.statement]
    assert len(guards) == sum(1 for w in citus.TRIGGERS.values() if w == "coordinator")
    for step in guards:
        conn.execute(step.statement)
    partitions = q("SELECT count(*) FROM pg_inherits WHERE inhparent = 'memora.embedding'::regclass")
    before = conn.execute(partitions).fetchone()[0]

    conn.execute(q("INSERT INTO memora.collection (name, embedding_model, dimensions) VALUES ('here', 'm', 3)"))
    conn.execute("CREATE OR REPLACE FUNCTION public.citus_is_coordinator() RETURNS bool LANGUAGE sql AS 'SELECT false'")
    # On a worker's copy the trigger does not run: version 1 comes from the coordinator's (Citus copies its rows).
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="embedding_version"):
        conn.execute(q("INSERT INTO memora.collection (name, embedding_model, dimensions) VALUES ('there', 'm', 3)"))

    assert conn.execute(partitions).fetchone()[0] == before + 1
    assert not any(citus.GUARD in s.statement for s in citus.plan(conn, SCHEMA))  # done once, not twice


def test_guarded_merges_an_existing_when() -> None:
    definition = (
        "CREATE TRIGGER t BEFORE UPDATE ON s.x FOR EACH ROW WHEN ((new.a IS DISTINCT FROM old.a)) "
        "EXECUTE FUNCTION s.f()"
    )

    assert citus.guarded(definition) == (
        "CREATE OR REPLACE TRIGGER t BEFORE UPDATE ON s.x FOR EACH ROW "
        "WHEN (citus_is_coordinator() AND (new.a IS DISTINCT FROM old.a)) EXECUTE FUNCTION s.f()"
    )


def _snapshot(url: str) -> list[Any]:
    with psycopg.connect(url) as conn:
        return [
            _constraints(conn),
            _catalog(
                conn,
                "SELECT tgname, pg_get_triggerdef(g.oid) FROM pg_trigger g JOIN pg_class c "
                "ON c.oid = g.tgrelid WHERE c.relnamespace = %s::regnamespace ORDER BY 1, 2",
            ),
            conn.execute("SELECT setconfig FROM pg_db_role_setting ORDER BY 1").fetchall(),
        ]


def _memora(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app", "--database-url", url, "db", "distribute", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_distribute_without_citus_refuses_and_changes_nothing(fresh_db_url: str) -> None:
    before = _snapshot(fresh_db_url)

    result = _memora(fresh_db_url)

    assert result.returncode != 0
    assert "memora db distribute needs a Citus coordinator: the citus extension is not installed" in result.stderr
    assert "Traceback" not in result.stderr
    assert _snapshot(fresh_db_url) == before


def test_dry_run_prints_the_plan(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url) as conn:
        steps = citus.plan(conn, SCHEMA)

    result = _memora(fresh_db_url, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(f"-- {s.why}\n{s.statement};\n" for s in steps)
    assert f"SELECT create_distributed_table('{SCHEMA}.chunk', 'collection_id'" in result.stdout
