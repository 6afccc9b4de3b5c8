"""Capacity: what a chunk costs on disk, what an HNSW index costs per million vectors, and how many hybrid searches a
core answers at 100k and 1M chunks; the figures behind the capacity model (replicas, shards).

Bytes per chunk: NFCorpus (../shared/data/nfcorpus, outside the repository) stored through Memora's ingestion
(`ingest.upsert`, then the worker with the local model, as search_quality.py stores it), and the 100k and 1M chunk
corpora of search_speed.py (search_corpus.load: COPY with the statistics' and postings' triggers, then the GIN and
HNSW builds); each relation's size (pg_table_size: heap and TOAST; pg_relation_size for an index) and the columns'
(pg_column_size) divided by the chunks, the document table by the documents.

HNSW: for each size, dimension and storage type (vector, halfvec), a collection of that many chunks of one word with
random unit vectors (search_corpus.load, which builds the index with memora.create_collection_index, m 16,
ef_construction 64). Random vectors give the index's size, which does not depend on the data (pgvector stores each
vector with its neighbour list, so the size is a whole number of them per 8 kB page: linear in the vectors); they are
the slow case of the build (vectors that cluster, as embeddings do, built 4-5x faster at 100k in search_speed.py), so
its build times are an upper bound. Sizes of 10,000 and 50,000 vectors: 1536 dimensions at 200,000 would take
tens of minutes a build here. The 384-d index of the 100k and 1M corpora below is a third and fourth size.

Throughput: `memora.search_hybrid(collection, text, vector, 10)` as prepared statements, from 1 and then 2 client
processes, each on its own connection, for --seconds per query set: keyword queries (3-8 words) and questions (8-20
words) of search_speed.py's 100k corpus with the local model's vectors, the same queries at both sizes. Per core:
searches per second of the server processes' CPU (/proc/<pid>/schedstat), and searches/s over the cores busy. The
first --embedded-rows chunks (20,000) have the model's vectors, the others noisy copies of those (search_corpus.spread,
as past 100,000 in search_speed.py's 1M run): embedding 100,000 chunks takes 35-50 min here, more when the machine
is shared. Text is real at every size, and BM25 is most of a hybrid search's time (docs/benchmarks.md section 4).

Each corpus is built once into its own database on an embedded PostgreSQL in --data-dir (default /tmp/memora-capacity,
kept between runs), and used again while its parameters and the schema's revision are the same; the JSON says which
commit built it and how long each step took. MEMORA_DATABASE_URL: build on that server instead (CPU not measured).

    .venv/bin/python benchmarks/capacity.py --json benchmarks/results/capacity.json
    .venv/bin/python benchmarks/capacity.py --hnsw-sizes 2000,8000 --rows 10000 --seconds 5   # quick
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from common import (
    REPO_ROOT,
    code_version,
    console,
    machine,
    print_facts,
    print_table,
    progress,
    server_facts,
    write_json,
)
from pgvector.psycopg import register_vector
from psycopg import sql
from search_corpus import GENERATOR_VERSION, Corpus, Generator, cached, draw_queries, load, read_sources, spread
from search_quality import ingest_dataset, load_nfcorpus
from search_speed import embedded
from search_speed_cases import backend_cpu
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import migrate
from app.db.embedded import EmbeddedPostgres
from app.db.engine import libpq_url, make_engine
from app.embeddings.local import BUNDLED_MODEL_SHA256

DATA = REPO_ROOT.parent / "shared" / "data"
COLLECTION = "capacity"
HYBRID = "SELECT * FROM memora.search_hybrid(%s, %s, %s, %s)"
K = 10
Build = Callable[[str, Settings], dict[str, Any]]  # (url, settings) -> facts of the build


# -- databases built once ------------------------------------------------------------------------------------------


@contextmanager
def server(data_dir: Path) -> Iterator[tuple[str, str]]:
    """(libpq URL of a maintenance database, a description): MEMORA_DATABASE_URL's server, else the embedded one in
    DATA_DIR, started if needed and stopped at the end (its data stays)."""
    if url := os.environ.get("MEMORA_DATABASE_URL"):
        yield libpq_url(Settings(database_url=url).database_url or url), "MEMORA_DATABASE_URL"
        return
    embedded_server = EmbeddedPostgres(data_dir)
    with console.status(f"starting the embedded PostgreSQL in {data_dir}"):
        running = embedded_server.ensure_running()
    try:
        yield running.url("postgres"), f"embedded PostgreSQL in {data_dir}"
    finally:
        embedded_server.stop()


def built(server_url: str, name: str, key: dict[str, Any], build: Build) -> tuple[str, dict[str, Any]]:
    """The URL of database NAME, built by BUILD(url, settings) unless a database of that name was built for the same
    KEY (and schema revision); its build facts (the commit that built it, seconds per step), kept as the database's
    comment, which is written last, so that an interrupted build is done again."""
    key = {**key, "schema_revision": migrate.head_revision()}
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(server_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        found = json.loads(row[0]) if row and row[0] else None
        if found and found["key"] == key:
            console.print(f"{name}: built before by {found['facts']['built_by']['commit']}, used again")
            migrate.upgrade(Settings(database_url=url))  # the functions of this checkout
            return url, found["facts"] | {"reused": True}
        if row:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    settings = Settings(database_url=url)
    with console.status(f"migrating {name}"):
        migrate.upgrade(settings)
    start = time.perf_counter()
    facts = build(url, settings) | {"built_by": code_version(), "build_seconds": time.perf_counter() - start}
    with psycopg.connect(server_url, autocommit=True) as conn:
        comment = sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(name), sql.Literal(json.dumps({"key": key, "facts": facts}))
        )
        conn.execute(comment)
    return url, facts | {"reused": False}


def build_nfcorpus(directory: Path) -> Build:
    def build(url: str, settings: Settings) -> dict[str, Any]:
        facts = ingest_dataset(settings, make_engine(settings, "bench"), load_nfcorpus(directory))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        return facts

    return build


def build_random(n: int, dimensions: int, storage: str, seed: int, mwm: str) -> Build:
    """N chunks of one word, each with a random unit vector of DIMENSIONS, indexed as STORAGE."""

    def build(url: str, settings: Settings) -> dict[str, Any]:
        rng = np.random.default_rng(seed)
        vectors = rng.standard_normal((n, dimensions), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        corpus = Corpus([["vector"] * min(20, n - start) for start in range(0, n, 20)], [0] * -(-n // 20), 1)
        with progress() as bar:
            _, seconds = load(url, corpus, vectors, COLLECTION, 10, bar, mwm, storage, f"random-unit-{dimensions}")
        return {"load_seconds": seconds}

    return build


def search_corpus(args: argparse.Namespace, rows: int) -> tuple[Generator, Corpus]:
    generator = Generator(read_sources(args.nfcorpus / "corpus.jsonl", args.squad), args.seed)
    return generator, generator.corpus(rows, args.chunks_per_document, args.words)


def build_search(args: argparse.Namespace, rows: int) -> Build:
    """search_speed.py's corpus of ROWS chunks: the model's vectors for the first --embedded-rows (from
    benchmarks/.cache, computed there if missing), noisy copies of them past that."""

    def build(url: str, settings: Settings) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        start = time.perf_counter()
        _, corpus = search_corpus(args, rows)
        seconds = {"text generation": time.perf_counter() - start}
        with progress() as bar:
            head = corpus.chunks[: args.embedded_rows]
            vectors = embedded(head, "chunks", bar, facts)
            if rows > args.embedded_rows:
                task = bar.add_task("noisy copies of vectors", total=rows - args.embedded_rows)
                start = time.perf_counter()
                vectors = spread(vectors, corpus, args.sigma, args.seed, lambda k: bar.advance(task, k))
                seconds["noisy copies"] = time.perf_counter() - start
                bar.remove_task(task)
            _, loaded = load(url, corpus, vectors, COLLECTION, 10, bar, args.maintenance_work_mem)
        return {"embedding": facts, "load_seconds": seconds | loaded, "documents": len(corpus.documents)}

    return build


# -- sizes -----------------------------------------------------------------------------------------------------------

# Per chunk: the chunk table's columns and indexes, the postings, the statistics, the vectors' table, key and index.
COLUMNS = """
    SELECT count(*), sum(pg_column_size(text)), sum(pg_column_size(tsv)), sum(pg_column_size(c.*)),
           avg(length(text)), avg(length(tsv))
    FROM memora.chunk c
"""
RELATIONS = """
    SELECT c.relname, c.relkind::text,
           CASE c.relkind WHEN 'i' THEN pg_relation_size(c.oid) ELSE pg_table_size(c.oid) END
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'memora' AND c.relkind IN ('r', 'i')
"""


def sizes(url: str) -> dict[str, Any]:
    """Bytes of the database's one collection: per chunk by part, per document, per vector; every relation."""
    with psycopg.connect(url) as conn:
        chunks, text, tsv, rows, chars, lexemes = conn.execute(COLUMNS).fetchone()  # type: ignore[misc]
        documents, document_content = conn.execute(
            "SELECT count(*), sum(pg_column_size(content)) FROM memora.document"
        ).fetchone()  # type: ignore[misc]
        dimensions, storage, vectors, vector_column = conn.execute(
            "SELECT dimensions, storage, (SELECT count(*) FROM memora.embedding), "
            "(SELECT sum(pg_column_size(embedding)) FROM memora.embedding) FROM memora.collection"
        ).fetchone()  # type: ignore[misc]
        relations = {name: (kind, size) for name, kind, size in conn.execute(RELATIONS).fetchall()}
        database = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]

    def total(*names: str, prefix: str = "") -> int:
        return sum(size for name, (_, size) in relations.items()
                   if name in names or (prefix and name.startswith(prefix)))  # fmt: skip

    versions = [name for name, (kind, _) in relations.items() if kind == "r" and name.startswith("embedding_c")]
    parts = {
        "chunk text (pg_column_size)": text,
        "chunk tsvector (pg_column_size)": tsv,
        "chunk table (heap and TOAST)": total("chunk"),
        "chunk GIN index on tsv": total("ix_chunk_tsv"),
        "chunk other indexes (key, ordinal, content hash)": total(prefix="pk_chunk")
        + total(prefix="uq_chunk") + total("ix_chunk_collection_id_content_hash"),
        "postings table": total("posting"),
        "postings key (B-tree)": total("pk_posting"),
        "term and text statistics (with keys)": total(prefix="term_stats") + total("pk_term_stats")
        + total(prefix="text_stats") + total("pk_text_stats"),
        "vectors table (heap and TOAST)": sum(total(name) for name in versions),
        "vectors key": sum(total(f"{name}_pkey") for name in versions),
        "HNSW index": sum(total(f"{name}_hnsw") for name in versions),
    }  # fmt: skip
    return {
        "chunks": chunks,
        "documents": documents,
        "vectors": vectors,
        "dimensions": dimensions,
        "storage": storage,
        "mean_chunk_chars": float(chars or 0),
        "mean_chunk_lexemes": float(lexemes or 0),
        "database_bytes": database,
        "bytes": parts,
        "bytes_per_chunk": {name: size / chunks for name, size in parts.items()} if chunks else {},
        "chunk_row_bytes_per_chunk": rows / chunks if chunks else None,
        "vector_column_bytes": vector_column / vectors if vectors else None,
        "document_bytes_per_document": (total("document") + total(prefix="ix_document") + total(prefix="pk_document")
                                        + total(prefix="uq_document")) / documents if documents else None,
        "document_content_bytes_per_document": document_content / documents if documents else None,
        "relations": {name: size for name, (_, size) in sorted(relations.items()) if size},
    }  # fmt: skip


# -- throughput --------------------------------------------------------------------------------------------------


def client(url: str, queries: list[tuple[str, np.ndarray]], seed: int, start_at: float, stop_at: float) -> dict[
    str, Any]:  # fmt: skip
    """One client process: hybrid searches back to back from START_AT to STOP_AT, the queries in a shuffled order."""
    with psycopg.connect(url, autocommit=True, application_name="memora-bench") as conn:
        register_vector(conn)
        cpu = backend_cpu(conn)
        order = np.random.default_rng(seed).permutation(len(queries))
        for index in order[:20]:  # prepared and warm before the clock starts
            text, vector = queries[index]
            conn.execute(HYBRID, (COLLECTION, text, vector, K), prepare=True).fetchall()
        time.sleep(max(0.0, start_at - time.time()))
        before = cpu() if cpu else 0.0
        latencies, i = [], 0
        while time.time() < stop_at:
            text, vector = queries[order[i % len(order)]]
            began = time.perf_counter()
            conn.execute(HYBRID, (COLLECTION, text, vector, K), prepare=True).fetchall()
            latencies.append(1000 * (time.perf_counter() - began))
            i += 1
        return {"searches": len(latencies), "server_cpu_seconds": cpu() - before if cpu else None,
                "latencies_ms": latencies}  # fmt: skip


def throughput(url: str, queries: list[tuple[str, np.ndarray]], clients: int, seconds: float, bar: Any,
               label: str) -> dict[str, Any]:  # fmt: skip
    """CLIENTS processes searching at once for SECONDS: searches/s, per core, latency percentiles."""
    start_at = time.time() + 3
    load_before = [round(x, 2) for x in os.getloadavg()]
    context = multiprocessing.get_context("fork")
    with context.Pool(clients) as pool:
        pending = pool.starmap_async(client, [(url, queries, seed, start_at, start_at + seconds)
                                              for seed in range(clients)])  # fmt: skip
        task = bar.add_task(label, total=int(seconds) + 3)
        while not pending.ready():
            pending.wait(1)
            bar.update(task, completed=min(time.time() - start_at + 3, seconds + 3))
        bar.remove_task(task)
        results = pending.get()
    searches = sum(r["searches"] for r in results)
    latencies = np.concatenate([r["latencies_ms"] for r in results])
    cpu = [r["server_cpu_seconds"] for r in results]
    cores = min(clients, len(os.sched_getaffinity(0)))
    return {
        "clients": clients,
        "seconds": seconds,
        "searches": searches,
        "searches_per_second": searches / seconds,
        "searches_per_second_per_busy_core": searches / seconds / cores,
        "server_cpu_ms_per_search": 1000 * sum(cpu) / searches if None not in cpu else None,  # type: ignore[arg-type]
        "searches_per_server_cpu_second": searches / sum(cpu) if None not in cpu else None,  # type: ignore[arg-type]
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def quiet(max_load: float, patience: float = 600) -> float:
    """Wait until the 1-minute load average is below MAX_LOAD (other work moves the throughput), at most PATIENCE
    seconds; the seconds waited."""
    start = time.perf_counter()
    with console.status("waiting for the load average to drop") as status:
        while os.getloadavg()[0] >= max_load and time.perf_counter() - start < patience:
            status.update(f"waiting for the load average ({os.getloadavg()[0]:.2f}) to drop below {max_load}")
            time.sleep(5)
    console.print(f"load average {os.getloadavg()[0]:.2f} after {time.perf_counter() - start:.0f} s of waiting")
    return time.perf_counter() - start


def query_sets(args: argparse.Namespace) -> dict[str, list[tuple[str, np.ndarray]]]:
    """search_speed.py's keyword queries and questions on its 100k corpus, with their vectors (cached)."""
    generator, corpus = search_corpus(args, 100_000)
    drawn = draw_queries(generator, corpus, 30 + args.queries, args.words, args.squad)
    found = {}
    with progress() as bar:
        for label, texts in (("queries", drawn.keywords), ("questions", drawn.questions)):
            vectors = cached(texts, label)
            vectors = embedded(texts, label, bar, {}) if vectors is None else vectors
            found["keywords" if label == "queries" else label] = list(zip(texts, vectors, strict=True))
    return found


# -- the run ---------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/memora-capacity"),
                        help="the embedded server's directory; its databases are kept for the next run")  # fmt: skip
    parser.add_argument("--parts", default="bytes,hnsw,throughput")
    parser.add_argument("--hnsw-sizes", default="10000,50000", help="vectors per HNSW index, two or more sizes")
    parser.add_argument("--dimensions", default="384,768,1536")
    parser.add_argument("--storages", default="vector,halfvec")
    parser.add_argument("--rows", default="100000,1000000", help="chunks of the corpora searched")
    parser.add_argument("--embedded-rows", type=int, default=20_000, help="chunks with the model's own vectors")
    parser.add_argument("--sigma", type=float, default=0.015, help="noise per dimension of the copied vectors")
    parser.add_argument("--chunks-per-document", type=int, default=20)
    parser.add_argument("--words", type=int, default=60)
    parser.add_argument("--queries", type=int, default=300, help="queries of each set (keywords, questions)")
    parser.add_argument("--clients", default="1,2", help="concurrent client processes, in turn")
    parser.add_argument("--seconds", type=float, default=30, help="measured per query set and client count")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait (up to 10 min) for a lower load to search")
    parser.add_argument("--maintenance-work-mem", default="6GB", help="for the index builds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nfcorpus", type=Path, default=DATA / "nfcorpus")
    parser.add_argument("--squad", type=Path, default=DATA / "squad/dev-v2.0.json")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    parts = args.parts.split(",")
    rows = [int(r) for r in args.rows.split(",")]
    started = time.perf_counter()
    figures: dict[str, Any] = {}
    with server(args.data_dir) as (server_url, server_kind):
        facts = {**machine(), **code_version(), "server": server_kind}
        print_facts("Machine", facts)
        if "bytes" in parts:
            url, build = built(server_url, "capacity_nfcorpus", {"corpus": str(args.nfcorpus), "model":
                               BUNDLED_MODEL_SHA256[:12]}, build_nfcorpus(args.nfcorpus))  # fmt: skip
            figures["nfcorpus"] = sizes(url) | {"build": build}
        if "hnsw" in parts:
            figures["hnsw"] = []
            for n in (int(s) for s in args.hnsw_sizes.split(",")):
                for dimensions in (int(d) for d in args.dimensions.split(",")):
                    for storage in args.storages.split(","):
                        key = {"n": n, "dimensions": dimensions, "storage": storage, "seed": args.seed, "m": 16,
                               "ef_construction": 64, "maintenance_work_mem": args.maintenance_work_mem}  # fmt: skip
                        build_index = build_random(n, dimensions, storage, args.seed, args.maintenance_work_mem)
                        url, build = built(server_url, f"capacity_hnsw_{n}_{dimensions}_{storage}", key, build_index)
                        found = sizes(url)
                        figures["hnsw"].append({
                            "n": n, "dimensions": dimensions, "storage": storage,
                            "build_seconds": build["load_seconds"]["HNSW index build"],
                            "index_bytes": found["bytes"]["HNSW index"],
                            "index_bytes_per_vector": found["bytes"]["HNSW index"] / n,
                            "table_bytes_per_vector": found["bytes"]["vectors table (heap and TOAST)"] / n,
                            "key_bytes_per_vector": found["bytes"]["vectors key"] / n,
                            "vector_column_bytes": found["vector_column_bytes"], "build": build,
                        })  # fmt: skip
        if "throughput" in parts:
            sets = query_sets(args)
            figures["search"] = []
            for size in rows:
                key = {"rows": size, "embedded_rows": min(size, args.embedded_rows), "sigma": args.sigma,
                       "seed": args.seed, "chunks_per_document": args.chunks_per_document, "words": args.words,
                       "generator": GENERATOR_VERSION, "model": BUNDLED_MODEL_SHA256[:12],
                       "maintenance_work_mem": args.maintenance_work_mem}  # fmt: skip
                url, build = built(server_url, f"capacity_search_{size}", key, build_search(args, size))
                found = {"rows": size, "sizes": sizes(url), "build": build, "runs": []}
                found["waited_for_load_seconds"] = quiet(args.max_load)
                with progress() as bar:
                    for name, queries in sets.items():
                        for clients in (int(c) for c in args.clients.split(",")):
                            label = f"{size:,} chunks, {name}, {clients} client(s)"
                            found["runs"].append({"query_set": name} | throughput(
                                url, queries[30:], clients, args.seconds, bar, label))  # fmt: skip
                figures["search"].append(found)
        # The settings of the server (pgvector is in the built databases, not in the maintenance one).
        facts |= server_facts(url)
    report(figures)
    console.print(f"wall time {time.perf_counter() - started:.0f} s")
    parameters = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_json(args.json, {"benchmark": "capacity", "parameters": parameters, "machine": facts} | figures)


def report(figures: dict[str, Any]) -> None:
    for name, found in [("NFCorpus", figures.get("nfcorpus"))] + [
        (f"{s['rows']:,} chunks", s["sizes"]) for s in figures.get("search", [])
    ]:
        if found:
            per_document = [["document table and indexes, per document", found["document_bytes_per_document"]]]
            print_table(f"Bytes per chunk: {name} ({found['chunks']:,} chunks, {found['documents']:,} documents)",
                        ["part", "bytes per chunk"], [[k, v] for k, v in found["bytes_per_chunk"].items()]
                        + per_document)  # fmt: skip
    if figures.get("hnsw"):
        print_table("HNSW (m 16, ef_construction 64), random unit vectors",
                    ["n", "dimensions", "storage", "build s", "index MB", "index bytes/vector", "table bytes/vector",
                     "index GiB per million"],
                    [[h["n"], h["dimensions"], h["storage"], h["build_seconds"], h["index_bytes"] / 2**20,
                      h["index_bytes_per_vector"], h["table_bytes_per_vector"], h["index_bytes_per_vector"] * 1e6
                      / 2**30] for h in figures["hnsw"]])  # fmt: skip
    for found in figures.get("search", []):
        print_table(f"Hybrid search, {found['rows']:,} chunks",
                    ["query set", "clients", "searches/s", "per busy core", "server CPU ms/search",
                     "searches per CPU s", "p50 ms", "p95 ms"],
                    [[r["query_set"], r["clients"], r["searches_per_second"], r["searches_per_second_per_busy_core"],
                      r["server_cpu_ms_per_search"], r["searches_per_server_cpu_second"], r["p50_ms"], r["p95_ms"]]
                     for r in found["runs"]])  # fmt: skip


if __name__ == "__main__":
    main()
