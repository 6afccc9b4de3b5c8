"""What row-level security by collection would cost a SQL reader's search (issue 14, optional; not shipped).

A scratch database with two collections; a reader login (migration 0007's reader group) meant to see only the first.
Three set-ups, each measured on the same queries of memora.search_hybrid as that reader:

    none      no policy (what Memora ships: a reader reads every collection)
    plain     ENABLE ROW LEVEL SECURITY on document, chunk, embedding and each partition, with the policy
              USING (collection_id = ANY (bench.visible_collections()))
    wrapped   the same policy with the call wrapped in a scalar subquery:
              USING (collection_id = ANY ((SELECT bench.visible_collections())::bigint[]))

bench.visible_collections() reads a grant table for current_user (STABLE, SECURITY DEFINER). Wrapped, PostgreSQL
evaluates it once per statement as an InitPlan; plain, once per row the policy filters (Supabase's RLS performance
guide). The partitions need policies of their own: the search functions read a collection's partition by name,
and a partition read directly does not apply its parent's policies.

    .venv/bin/python benchmarks/rls_cost.py [--documents 3000] [--queries 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from app.db import sql_roles
from app.db.engine import make_engine
from app.embeddings.hashing import HashingEmbedder
from app.ingest.worker import Worker
from benchmarks.common import (
    REPO_ROOT,
    code_version,
    console,
    machine,
    print_facts,
    print_table,
    scratch_database,
    server_facts,
    write_json,
)

DIMENSIONS = 64
WORDS = [
    *("fox", "dog", "cat", "bird", "fish", "river", "mountain", "forest", "city", "road", "bridge", "tower"),
    *("garden", "market", "school", "library", "museum", "harbour", "island", "desert", "valley", "storm"),
    *("rain", "snow", "wind", "sun", "moon", "star", "cloud", "engine", "wheel", "ladder", "window", "door"),
]

SETUP = """
CREATE SCHEMA bench;
CREATE TABLE bench.grant_ (role_name text, collection text);
CREATE FUNCTION bench.visible_collections() RETURNS bigint[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT coalesce(array_agg(c.id), '{}') FROM memora.collection c
    JOIN bench.grant_ g ON g.collection = c.name AND g.role_name = session_user
$$;
GRANT USAGE ON SCHEMA bench TO PUBLIC;
"""
TABLES = ("document", "chunk", "embedding", "embedding_c1", "embedding_c2")


def policies(conn: psycopg.Connection, reader: str, mode: str) -> None:
    """Drop every policy of the benchmark, then create MODE's (none, plain, wrapped)."""
    for table in TABLES:
        conn.execute(f"DROP POLICY IF EXISTS by_collection ON memora.{table}")
        conn.execute(f"ALTER TABLE memora.{table} DISABLE ROW LEVEL SECURITY")
    if mode == "none":
        return
    call = "bench.visible_collections()" if mode == "plain" else "(SELECT bench.visible_collections())::bigint[]"
    for table in TABLES:
        conn.execute(f"ALTER TABLE memora.{table} ENABLE ROW LEVEL SECURITY")
        conn.execute(
            f"CREATE POLICY by_collection ON memora.{table} FOR SELECT TO {reader} USING (collection_id = ANY ({call}))"
        )


def measure(url: str, queries: list[tuple[str, str]], collection: str) -> tuple[list[float], list[int]]:
    latencies, counts = [], []
    statement = "SELECT count(*) FROM memora.search_hybrid(%s, %s, %s::vector, 10)"
    with psycopg.connect(url, autocommit=True) as conn:
        for text, vector in queries[:5]:  # warm the caches and the plans
            conn.execute(statement, (collection, text, vector))
        for text, vector in queries:
            start = time.perf_counter()
            row = conn.execute(statement, (collection, text, vector)).fetchone()
            latencies.append((time.perf_counter() - start) * 1000)
            counts.append(int(row[0]) if row else -1)
    return latencies, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=3000, help="documents per collection")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="each round measures every set-up once")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "rls_cost.json")
    args = parser.parse_args()
    rng = random.Random(14)

    with scratch_database("rls") as scratch:
        with psycopg.connect(scratch.url, autocommit=True) as conn:
            conn.execute(SETUP)
            for name in ("a", "b"):
                conn.execute(
                    "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions)"
                    " VALUES (%s, 'hashing', 'hashing', %s)",
                    (name, DIMENSIONS),
                )
                rows = [
                    (name, f"{name}{i}", " ".join(rng.choices(WORDS, k=rng.randint(20, 60))))
                    for i in range(args.documents)
                ]
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO memora.document (collection_id, external_id, content)"
                        " SELECT id, %s || '', %s FROM memora.collection WHERE name = %s",
                        [(external_id, content, collection) for collection, external_id, content in rows],
                    )
        engine = make_engine(scratch.settings, "worker")
        worker = Worker(scratch.settings, engine)
        with console.status("chunking and embedding"):
            while worker.run_once():
                pass
        engine.dispose()

        reader = f"bench_reader_{secrets.token_hex(3)}"
        password = secrets.token_urlsafe(12)
        with psycopg.connect(scratch.url, autocommit=True) as conn:
            sql_roles.create_login(conn, "memora", reader, "reader", password)
            conn.execute("INSERT INTO bench.grant_ VALUES (%s, 'a')", (reader,))
            conn.execute("ANALYZE")
        reader_url = make_url(scratch.url).set(username=reader, password=password).render_as_string(False)

        embedder = HashingEmbedder(DIMENSIONS)
        texts = [" ".join(rng.choices(WORDS, k=3)) for _ in range(args.queries)]
        vectors = ["[" + ",".join(f"{x:.6f}" for x in v) + "]" for v in embedder.embed(texts)]
        queries = list(zip(texts, vectors, strict=True))

        modes = ["none", "plain", "wrapped"]
        results: dict[str, list[float]] = {mode: [] for mode in modes}
        counts: dict[str, list[int]] = {}
        hidden: dict[str, list[int]] = {}
        try:
            for round_ in range(args.rounds):
                for mode in modes if round_ % 2 == 0 else list(reversed(modes)):
                    with psycopg.connect(scratch.url, autocommit=True) as conn:
                        policies(conn, reader, mode)
                    latencies, found = measure(reader_url, queries, "a")
                    results[mode] += latencies
                    counts[mode] = found
                    hidden[mode] = measure(reader_url, queries[:5], "b")[1]
        finally:
            with psycopg.connect(scratch.url, autocommit=True) as conn:
                policies(conn, reader, "none")
                sql_roles.drop_login(conn, "memora", reader)

        base = statistics.median(results["none"])
        figures: dict[str, dict[str, Any]] = {}
        rows: list[list[Any]] = []
        for mode in modes:
            p50 = statistics.median(results[mode])
            p95 = statistics.quantiles(results[mode], n=20)[18]
            rows.append([mode, len(results[mode]), f"{p50:.2f}", f"{p95:.2f}", f"{p50 / base:.2f}x",
                         sum(counts[mode]), sum(hidden[mode])])  # fmt: skip
            figures[mode] = {
                "searches": len(results[mode]), "p50_ms": round(p50, 3), "p95_ms": round(p95, 3),
                "p50_vs_none": round(p50 / base, 3), "hits_granted": sum(counts[mode]),
                "hits_hidden": sum(hidden[mode]),
            }  # fmt: skip
        print_facts("machine", machine())
        print_table(
            f"search_hybrid as a SQL reader, {args.documents} documents per collection, k=10 (ms)",
            ["policy", "queries", "p50", "p95", "p50 vs none", "hits in a", "hits in b (hidden)"],
            rows,
        )
        facts = {**machine(), **code_version(), "server": server_facts(scratch.url)}
        write_json(args.json, {"benchmark": "rls_cost", "parameters": {k: str(v) for k, v in vars(args).items()},
                               "machine": facts, "figures": figures})  # fmt: skip


if __name__ == "__main__":
    main()
