"""app/db/query.py: SQL text naming memora.<object> runs in whichever schema the engine works in."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, Engine, text

from app.db.query import Query, in_schema


def test_in_schema_rewrites_qualified_names_only() -> None:
    statement = "SELECT memora.f(x.memora), 'memora' FROM memora.collection c, \"memora\".dataset, memoranda.y"
    assert in_schema(statement, "memora") == statement
    assert in_schema(statement, "ml") == (
        "SELECT ml.f(x.memora), 'memora' FROM ml.collection c, \"memora\".dataset, memoranda.y"
    )


def test_a_query_runs_with_parameters_and_a_literal_percent(connection: Connection) -> None:
    query = Query("SELECT %(n)s::int + 1 AS next, 'a%%b' AS text, count(*) AS n FROM memora.collection")
    row = query.run(connection, {"n": 41}).one()
    assert (row.next, row.text) == (42, "a%b")


def test_a_query_without_parameters_reads_percent_the_same_way(connection: Connection) -> None:
    assert Query("SELECT 'a%%b'").run(connection).scalar_one() == "a%b"


def test_identifier_slots_are_quoted(connection: Connection) -> None:
    connection.execute(text('CREATE TEMP TABLE "odd name; drop" (x int)'))
    query = Query("INSERT INTO {table} VALUES (%(x)s) RETURNING x")
    assert query.run(connection, {"x": 7}, table="odd name; drop").scalar_one() == 7


@pytest.fixture
def other_schema(engine: Engine) -> Connection:
    """A connection whose engine maps Memora's schema to `query_test`, where a table of that name holds other rows."""
    conn = engine.execution_options(schema_translate_map={"memora": "query_test"}).connect()
    conn.begin()
    conn.execute(
        text(
            "CREATE SCHEMA query_test; CREATE TABLE query_test.collection (name text);"
            "INSERT INTO query_test.collection VALUES ('x')"
        )
    )
    return conn


def test_the_schema_comes_from_the_connection(other_schema: Connection) -> None:
    try:
        assert Query("SELECT name FROM memora.collection").run(other_schema).scalars().all() == ["x"]
    finally:
        other_schema.rollback()
        other_schema.close()
