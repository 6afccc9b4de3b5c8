"""`memora db distribute` on a real Citus cluster: migrate, distribute, add documents, search; the search reads one
shard of each sharded table, and finds what plain PostgreSQL finds. Skipped without MEMORA_TEST_CITUS_URL."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.db import citus, migrate
from app.db.engine import sqlalchemy_url
from tests.factories import make_chunk, make_collection, make_document
from tests.schema import SCHEMA

TEXTS = [
    "Citus shards a table by a distribution column and routes a query to one shard.",
    "PostgreSQL keeps a collection of documents; BM25 ranks their chunks for a query.",
    "The coordinator plans the query; the workers hold the shards of every table.",
    "An HNSW index finds the nearest vectors of a query.",
]


def _load(url: str, schema: str) -> int:
    """A collection with TEXTS as documents of one chunk each, through the ORM as the service writes; its id."""
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool).execution_options(
        schema_translate_map={"memora": schema}
    )
    with Session(engine) as db:
        collection = make_collection(db, name="shards")
        for i, content in enumerate(TEXTS):
            make_chunk(db, make_document(db, collection, external_id=f"d{i}", title=f"Doc {i}", content=content))
        db.commit()
        found = collection.id
    engine.dispose()
    return found


def _search(conn: Any, schema: str) -> list[tuple[Any, ...]]:
    query = f'SELECT external_id, ordinal, round(score::numeric, 6) FROM "{schema}".search_text_v1(%s, %s, 10)'
    return conn.execute(query, ("shards", "query shards table")).fetchall()


def test_distribute_then_search_reads_one_shard(citus_url: str, citus_schema: str, fresh_db_url: str) -> None:
    migrate.upgrade(Settings(database_url=citus_url, db_schema=citus_schema))
    with psycopg.connect(citus_url, autocommit=True) as conn:
        steps = citus.apply(conn, citus_schema)
        again = citus.plan(conn, citus_schema)
        kinds = dict(
            conn.execute(
                "SELECT c.relname, p.partmethod FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid "
                "WHERE c.relnamespace = %s::regnamespace",
                (citus_schema,),
            ).fetchall()
        )
    assert steps
    assert again == []  # a second run has nothing to do
    for table, kind in citus.TABLES.items():
        expected = {"collection": "h", "dataset": "h", "reference": "n", "local": None}[kind]
        assert kinds.get(table) == expected, table

    collection_id = _load(citus_url, citus_schema)
    with psycopg.connect(citus_url, autocommit=True) as conn:
        conn.execute("SET citus.log_remote_commands TO on")
        conn.execute("SET client_min_messages TO log")
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        on_citus = _search(conn, citus_schema)
        shards = {
            row[0]
            for row in conn.execute(
                "SELECT get_shard_id_for_distribution_column(format('%%I.%%I', %s::text, t), %s) FROM unnest(%s) t",
                (citus_schema, collection_id, [t for t, k in citus.TABLES.items() if k == "collection"]),
            ).fetchall()
        }
        reference = {
            row[0]
            for row in conn.execute(
                "SELECT s.shardid FROM pg_dist_shard s JOIN pg_class c ON c.oid = s.logicalrelid "
                "WHERE c.relnamespace = %s::regnamespace AND s.shardminvalue IS NULL",
                (citus_schema,),
            ).fetchall()
        }
        plan_text = "\n".join(
            r[0]
            for r in conn.execute(
                f'EXPLAIN SELECT p.chunk_id FROM "{citus_schema}".posting p JOIN "{citus_schema}".chunk c '
                "ON c.collection_id = p.collection_id AND c.id = p.chunk_id WHERE p.collection_id = %s",
                (collection_id,),
            ).fetchall()
        )
    touched = {int(m) for n in notices for m in re.findall(r"_(\d{6,})\b", n)}
    assert touched, notices
    assert touched <= shards | reference, f"the search read other shards: {touched - shards - reference}"
    assert "Task Count: 1" in plan_text, plan_text

    _load(fresh_db_url, SCHEMA)
    with psycopg.connect(fresh_db_url) as conn:
        on_postgres = _search(conn, SCHEMA)
    assert len(on_postgres) == len(TEXTS)  # every text has "query"
    assert on_citus == on_postgres
