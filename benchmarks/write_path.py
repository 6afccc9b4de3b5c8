"""Write path with precomputed 384-d vectors: the worker's write against a binary COPY ceiling and executemany/ORM.

The same synthetic rows (chunks of ~60 words, a random unit vector each, 20 chunks per document) go into a fresh
collection once per variant, in two modes: with the collection's HNSW index in place during the load, and in bulk
mode (index dropped before the load, rebuilt with memora.create_collection_index after). A row is one chunk with its
vector: a row of memora.chunk plus a row of memora.embedding. docs/benchmarks.md describes the variants and the
figures measured.

    .venv/bin/python benchmarks/write_path.py [--rows 100000] [--indexed-rows 5000] [--json PATH]
"""

from __future__ import annotations

import argparse
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from common import (
    Timings,
    code_version,
    console,
    machine,
    print_facts,
    print_table,
    progress,
    scratch_database,
    server_facts,
    write_json,
)
from pgvector.psycopg import register_vector
from psycopg import sql
from rich.progress import Progress
from sqlalchemy import Engine
from write_variants import (
    CHUNK_COLUMNS,
    CHUNK_TYPES,
    DIMENSIONS,
    EMBEDDING_COLUMNS,
    MODEL,
    VARIANTS,
    WORKER,
    SyntheticDocument,
    Target,
    synthesize,
)

from app.config import Settings
from app.db.engine import make_engine
from app.db.models import SCHEMA, version_table

# -- one measurement -------------------------------------------------------------------------------------------


def prepare(url: str, docs: list[SyntheticDocument], name: str, *, with_documents: bool = True) -> tuple[int, int]:
    """Empty the tables, create a collection (its partition and HNSW index come from the trigger) and, unless told
    otherwise, queue its documents as claimed by WORKER. Returns (collection id, oid of its text search config)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE memora.chunk, memora.document CASCADE")
        conn.execute("DELETE FROM memora.collection")
        collection_id, language_oid = conn.execute(
            "INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions) "
            "VALUES (%s, 'local', %s, %s) RETURNING id, language::oid",
            (name, MODEL, DIMENSIONS),
        ).fetchone()  # type: ignore[misc]
        if with_documents:
            with conn.cursor().copy(
                "COPY memora.document (collection_id, id, external_id, title, content, status, attempts, leased_by) "
                "FROM STDIN"
            ) as copy:
                for doc in docs:
                    row = (collection_id, doc.id, f"doc-{doc.id}", doc.title, doc.content, "processing", 1, WORKER)
                    copy.write_row(row)
        conn.execute("VACUUM ANALYZE memora.document")
        with suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")
    return collection_id, language_oid


def hnsw_index(collection_id: int) -> sql.Identifier:
    return sql.Identifier(SCHEMA, f"{version_table(collection_id, 1)}_hnsw")


@dataclass
class Bench:
    """What every measurement of a run shares."""

    url: str
    settings: Settings
    engine: Engine
    vectors: dict[bytes, Any]
    batch_size: int
    bar: Progress


def measure(bench: Bench, name: str, docs: list[SyntheticDocument], *, bulk: bool, build: bool) -> dict[str, Any]:
    """Load DOCS with one variant into a fresh collection. BULK: the HNSW index is dropped first and, with BUILD,
    rebuilt (and timed) after the load."""
    variant = VARIANTS[name]
    collection_id, language_oid = prepare(
        bench.url, docs, f"bench-{name}-{'bulk' if bulk else 'indexed'}", with_documents=variant.documents_first
    )
    if bulk:
        with psycopg.connect(bench.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP INDEX {}").format(hnsw_index(collection_id)))
    target = Target(
        bench.url, bench.settings, bench.engine, collection_id, language_oid, docs, bench.vectors, bench.batch_size,
        bench.bar,
    )  # fmt: skip
    timings = Timings()
    start = time.perf_counter()
    variant.run(target, timings)
    load = time.perf_counter() - start - timings.excluded
    build_seconds = None
    with psycopg.connect(bench.url, autocommit=True) as conn:
        if bulk and build:
            task = bench.bar.add_task(f"{name}: building the HNSW index", total=None)
            start = time.perf_counter()
            conn.execute("SELECT memora.create_collection_index(%s)", (collection_id,))
            build_seconds = time.perf_counter() - start
            bench.bar.remove_task(task)
        chunks, embeddings, indexed = conn.execute(
            "SELECT (SELECT count(*) FROM memora.chunk WHERE collection_id = %(c)s AND tsv IS NOT NULL), "
            "(SELECT count(*) FROM memora.embedding WHERE collection_id = %(c)s), to_regclass(%(i)s) IS NOT NULL",
            {"c": collection_id, "i": hnsw_index(collection_id).as_string(conn)},
        ).fetchone()  # type: ignore[misc]
    assert chunks == embeddings == target.rows, (name, chunks, embeddings, target.rows)
    assert indexed == (not bulk or build), (name, indexed)
    return {
        "variant": name,
        "mode": "bulk" if bulk else "indexed",
        "rows": target.rows,
        "documents": len(docs),
        "load_seconds": load,
        "load_rows_per_second": target.rows / load,
        "index_build_seconds": build_seconds,
        "index_build_measured": build_seconds is not None,
        "steps": timings.as_dict(),
    }


def add_totals(results: list[dict[str, Any]]) -> float | None:
    """Load + index build per result; a bulk load whose build was not timed gets the mean of those that were
    (the build reads the same vectors whichever way they were written). Returns that mean."""
    builds = [r["index_build_seconds"] for r in results if r["index_build_measured"]]
    mean = sum(builds) / len(builds) if builds else None
    for r in results:
        if r["mode"] == "bulk" and not r["index_build_measured"]:
            r["index_build_seconds"] = mean
        if r["mode"] == "indexed" or r["index_build_seconds"] is not None:
            r["total_seconds"] = r["load_seconds"] + (r["index_build_seconds"] or 0.0)
            r["total_rows_per_second"] = r["rows"] / r["total_seconds"]
    return mean


def diagnose(url: str, docs: list[SyntheticDocument], vectors: dict[bytes, Any]) -> dict[str, float]:
    """Where the ceiling's time goes: the same chunk and embedding rows COPYed into bare tables (no constraints,
    no indexes), then into a bare chunk table with the generated tsvector, then computing the tsvectors alone."""
    collection_id, language_oid = prepare(url, docs, "bench-diagnose")
    target = Target(url, None, None, collection_id, language_oid, docs, vectors, 1, None)  # type: ignore[arg-type]
    chunk_ids = [list(range(i * 1000, i * 1000 + len(doc.chunks))) for i, doc in enumerate(docs)]
    tsv = "setweight(to_tsvector(language, title), 'A') || setweight(to_tsvector(language, text), 'B')"
    seconds: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
        conn.execute("CREATE SCHEMA bench")
        conn.execute(
            "CREATE TABLE bench.chunk_bare AS SELECT collection_id, id, document_id, ordinal, text, char_start, "
            "char_end, token_count, content_hash, title, language, metadata FROM memora.chunk WITH NO DATA"
        )
        conn.execute("CREATE TABLE bench.chunk_tsv (LIKE bench.chunk_bare)")
        conn.execute(f"ALTER TABLE bench.chunk_tsv ADD COLUMN tsv tsvector GENERATED ALWAYS AS ({tsv}) STORED")
        conn.execute("CREATE TABLE bench.chunk_gin (LIKE bench.chunk_tsv INCLUDING GENERATED)")
        conn.execute("CREATE INDEX ON bench.chunk_gin USING gin (tsv)")
        conn.execute("CREATE TABLE bench.embedding_bare AS SELECT * FROM memora.embedding WITH NO DATA")
        for label, table, types, rows_of in (
            ("chunk rows into a bare table", "chunk_bare", CHUNK_TYPES, target.chunk_rows),
            ("chunk rows into a bare table + generated tsvector", "chunk_tsv", CHUNK_TYPES, target.chunk_rows),
            ("... + GIN index on the tsvector", "chunk_gin", CHUNK_TYPES, target.chunk_rows),
            ("embedding rows into a bare table", "embedding_bare", ["int8", "int8", "text", "vector"], None),
        ):
            columns = EMBEDDING_COLUMNS if rows_of is None else CHUNK_COLUMNS
            statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier("bench", table), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            start = time.perf_counter()
            with conn.transaction(), conn.cursor().copy(statement) as copy:
                copy.set_types(types)
                for doc, ids in zip(docs, chunk_ids, strict=True):
                    for row in (rows_of or target.embedding_rows)(doc, ids):
                        copy.write_row(row)
            seconds[label] = time.perf_counter() - start
        start = time.perf_counter()
        conn.execute(f"SELECT sum(length({tsv})) FROM bench.chunk_bare")
        seconds["tsvector computation alone (SELECT)"] = time.perf_counter() - start
        conn.execute("DROP SCHEMA bench CASCADE")
    return seconds


# -- the report ------------------------------------------------------------------------------------------------


def ratio(results: list[dict[str, Any]], mode: str, a: str, b: str, key: str) -> float | None:
    found = {r["variant"]: r for r in results if r["mode"] == mode}
    if a not in found or b not in found or found[a].get(key) is None or found[b].get(key) is None:
        return None
    return float(found[a][key] / found[b][key])


def report(results: list[dict[str, Any]], diagnostics: dict[str, float] | None) -> dict[str, Any]:
    def build(r: dict[str, Any]) -> Any:
        if r["index_build_seconds"] is None or r["index_build_measured"]:
            return r["index_build_seconds"]
        return f"{r['index_build_seconds']:.2f} (mean)"

    print_table(
        "Write path: rows/s (a row = a chunk row + its embedding row)",
        ["variant", "mode", "rows", "load s", "index build s", "total s", "load rows/s", "total rows/s"],
        [
            [VARIANTS[r["variant"]].label, r["mode"], r["rows"], r["load_seconds"], build(r), r.get("total_seconds"),
             r["load_rows_per_second"], r.get("total_rows_per_second")]
            for r in results
        ],
    )  # fmt: skip
    measures = {
        "bulk: load": ("bulk", "load_rows_per_second"),
        "bulk: load + index build": ("bulk", "total_rows_per_second"),
        "indexed: load": ("indexed", "load_rows_per_second"),
    }
    numerators = ("memora", "memora-doc", "memora-upsert", "copy-batch")
    pairs = [f"{a}/{b}" for a in numerators for b in ("ceiling", "executemany", "orm")]
    ratios = {
        pair: {label: ratio(results, mode, *pair.split("/"), key) for label, (mode, key) in measures.items()}
        for pair in pairs
    }
    ratios = {pair: values for pair, values in ratios.items() if any(v is not None for v in values.values())}
    print_table(
        "Ratios of rows/s (targets: memora/ceiling >= 0.5; memora/executemany and memora/orm >= 10)",
        ["ratio", *measures],
        [[pair, *values.values()] for pair, values in ratios.items()],
    )
    for pair, goal in (("memora/ceiling", 0.5), ("memora/executemany", 10.0), ("memora/orm", 10.0)):
        verdicts = [
            f"{label} {value:.2f} {'met' if value >= goal else 'NOT met'}"
            for label, value in ratios.get(pair, {}).items()
            if value is not None
        ]
        if verdicts:
            console.print(f"target {pair} >= {goal:g}: " + "; ".join(verdicts))
    for r in results:
        steps = sorted(r["steps"].items(), key=lambda item: -item[1])
        rest = "rest (Python, SQLAlchemy, progress)"
        if r["variant"] in ("memora", "memora-doc"):
            rest = "rest (pool checkout + pre-ping, BEGIN, COMMIT, Python)"
        if r["variant"] == "memora-upsert":
            rest = "rest (document INSERT ... ON CONFLICT, status update, Python)"
        steps.append((rest, r["load_seconds"] - sum(r["steps"].values())))
        print_table(
            f"Steps of {r['variant']} ({r['mode']}, {r['rows']:,} rows, load {r['load_seconds']:.1f} s)",
            ["step", "seconds", "share of load"],
            [[name, value, f"{100 * value / r['load_seconds']:.0f}%"] for name, value in steps],
        )
    if diagnostics:
        print_table(
            "Where the ceiling's COPY time goes (same rows, bulk mode)",
            ["COPY / query", "seconds"],
            [[k, v] for k, v in diagnostics.items()],
        )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="chunks written per variant in bulk mode")
    parser.add_argument(
        "--indexed-rows",
        type=int,
        default=5_000,
        help="chunks written per variant with the HNSW index in place (slow: every row is a graph insert)",
    )
    parser.add_argument("--chunks-per-document", type=int, default=20)
    parser.add_argument("--words", type=int, default=60, help="words per chunk")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=Settings().worker_batch_size,
        help="documents a worker claims and writes at once (MEMORA_WORKER_BATCH_SIZE)",
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--modes", default="bulk,indexed", help="bulk, indexed or both")
    parser.add_argument(
        "--build-after",
        default="ceiling,memora",
        help="bulk variants followed by a timed index build ('all' for every one); the others are charged the "
        "mean of those builds",
    )
    parser.add_argument("--no-diagnose", action="store_true", help="skip the breakdown of the ceiling's COPY")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    modes = [m for m in args.modes.split(",") if m]
    build_after = set(VARIANTS) if args.build_after == "all" else set(args.build_after.split(","))
    unknown = set(variants) - set(VARIANTS) | set(modes) - {"bulk", "indexed"} | build_after - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant or mode: {', '.join(sorted(unknown))}")
    if "bulk" in modes and not build_after & set(variants):
        build_after.add(variants[0])

    started = time.perf_counter()
    with console.status(f"synthesizing {args.rows:,} chunks and vectors"):
        docs, matrix = synthesize(args.rows, args.chunks_per_document, args.words, args.seed)
        vectors = {c.content_hash: matrix[i] for i, c in enumerate(c for doc in docs for c in doc.chunks)}
        assert len(vectors) == args.rows, "synthetic chunks must all differ"
    indexed_docs = docs[: max(1, args.indexed_rows // args.chunks_per_document)]
    if "indexed" in modes and len(indexed_docs) < len(docs):
        console.print(
            f"note: with the HNSW index in place every row is a graph insert, so that mode writes the first "
            f"{sum(len(d.chunks) for d in indexed_docs):,} rows only (--indexed-rows); bulk mode writes {args.rows:,}"
        )
    with scratch_database("memora_bench_write") as db:
        facts = {**machine(), **code_version(), **server_facts(db.url), "server": db.server}
        print_facts("Machine and server", facts)
        engine = make_engine(db.settings, "bench")
        results: list[dict[str, Any]] = []
        diagnostics = None
        try:
            with progress() as bar:
                bench = Bench(db.url, db.settings, engine, vectors, args.batch_size, bar)
                for mode in modes:
                    for name in variants:
                        bulk = mode == "bulk"
                        result = measure(
                            bench, name, docs if bulk else indexed_docs, bulk=bulk, build=name in build_after
                        )
                        results.append(result)
                        built = result["index_build_seconds"]
                        console.print(
                            f"{VARIANTS[name].label} [{mode}]: {result['rows']:,} rows, load "
                            f"{result['load_seconds']:.1f} s ({result['load_rows_per_second']:,.0f} rows/s)"
                            + (f", index build {built:.1f} s" if built is not None else "")
                        )
                if not args.no_diagnose and "bulk" in modes:
                    task = bar.add_task("diagnostics: COPY into bare tables", total=None)
                    diagnostics = diagnose(db.url, docs, vectors)
                    bar.remove_task(task)
        finally:
            engine.dispose()
    mean_build = add_totals(results)
    ratios = report(results, diagnostics)
    console.print(f"wall time {time.perf_counter() - started:.0f} s")
    write_json(
        args.json,
        {
            "benchmark": "write_path",
            "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": facts,
            "mean_index_build_seconds": mean_build,
            "results": results,
            "ratios": ratios,
            "diagnostics": diagnostics,
        },
    )


if __name__ == "__main__":
    main()
