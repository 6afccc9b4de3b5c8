"""Where a hybrid search's time goes inside the server on a small corpus (issue 15: SQuAD's 836 chunks), part by part.

On a few hundred chunks every part of a search is fast, and what is left is fixed cost: planning, function calls,
fusion. This script measures it where the client and the network cannot blur it: one PL/pgSQL function, run in the
server, calls each part once per query (the parts in a shuffled order for each query, queries shuffled) and times
each call with clock_timestamp(). The corpus is loaded as benchmarks/search_peers.py loads it (Memora chunks through
`memora ingest`'s path, the peers' tables beside them; vectors from benchmarks/.cache), with its questions.

The parts, all at k 10 and Memora's defaults (40 candidates a side, ef_search 64):
- `search_hybrid_v1` (default, convex) and the RRF(posting BM25, HNSW) recipe of search_peers.py (100 a side,
  ef_search 100), the recipe as one static statement in a PL/pgSQL function, so its plan is kept as a prepared
  statement's is;
- the BM25 side: `memora.bm25_candidates` (40), and the recipe's posting-table BM25 (100);
- the vector side: `memora.vector_candidates` (40), which calls the collection's nearest function
  (`memora.embedding_c<id>_nearest`), that function alone, the statement `vector_candidates` built and ran on every
  call before it (EXECUTE: planned per call, the planner free to choose an exact scan), the same with
  enable_seqscan off (planned per call, the index), and the recipe's HNSW query (100 rows);
- what a whole hybrid function per collection would give: `search_hybrid_v1`'s statement with the collection's id
  and nearest function written in (static SQL for both sides and the fusion), called directly, as only a caller
  who knows the collection's function could; the same reached as `search_hybrid_v1` would have to reach it, by
  name (its argument checks, then one EXECUTE); and those argument checks alone.

    .venv/bin/python benchmarks/search_fixed_cost.py                      # SQuAD, 300 questions, 5 rounds
    .venv/bin/python benchmarks/search_fixed_cost.py --sets nfcorpus --rounds 3

Reads ../shared/data (outside the repository). Writes benchmarks/results/search_fixed_cost.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg
from common import (
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
from peer_recipes import POSTING_BM25, document_texts, load_peers, names
from pgvector.psycopg import register_vector
from psycopg import sql
from search_peers import SETS, CachedEmbedder, QuerySet, choose, embed_queries, ingest_memora
from search_quality import load_nfcorpus, load_squad
from write_variants import MODEL

from app.db.engine import make_engine
from app.embeddings import registry

DEPTH = 40  # search_hybrid_v1's candidates a side at k 10

# Each part: a statement PERFORMed once per query, over pg_temp.queries (q text, e vector) row r.
PARTS = {
    "search_hybrid_v1": "PERFORM count(*) FROM memora.search_hybrid_v1({collection}, r.q, r.e, 10)",
    "RRF recipe (static)": "PERFORM count(*) FROM pg_temp.rrf_recipe(r.q, r.e, 10)",
    "bm25_candidates": f"PERFORM count(*) FROM memora.bm25_candidates({{collection_id}}, r.q, {DEPTH})",
    "recipe BM25 (static)": "PERFORM count(*) FROM pg_temp.recipe_bm25(r.q)",
    "vector_candidates": f"PERFORM count(*) FROM memora.vector_candidates({{collection_id}}, r.e, {DEPTH})",
    "nearest function": f"PERFORM count(*) FROM memora.{{nearest}}(r.e, {DEPTH})",
    "statement per call": f"PERFORM count(*) FROM pg_temp.planned_per_call({{collection_id}}, r.e, {DEPTH}, false)",
    "statement per call, index": f"PERFORM count(*) FROM pg_temp.planned_per_call({{collection_id}}, r.e, {DEPTH}, "
    "true)",
    "recipe HNSW (static)": "PERFORM count(*) FROM pg_temp.recipe_hnsw(r.e)",
    "hybrid per collection, called directly": "PERFORM count(*) FROM pg_temp.hybrid_static(r.q, r.e, 10)",
    "hybrid per collection, through EXECUTE": "PERFORM count(*) FROM pg_temp.hybrid_dispatch({collection}, r.q, r.e, "
    "10)",
    "argument checks": "PERFORM memora.check_search_arguments(memora.search_collection({collection}), 10, NULL, r.e)",
}


def recipe_functions(corpus: str, collection_id: int, k1: float, b: float) -> list[sql.Composed | sql.SQL]:
    """The recipe's statements as PL/pgSQL functions in pg_temp (their plans kept for the session, as a prepared
    statement's are), and the statement vector_candidates ran per call before the nearest functions."""
    partition = sql.Identifier("memora", f"embedding_c{collection_id}_v1")
    bm25 = sql.SQL(POSTING_BM25.replace("%(k1)s", str(k1)).replace("%(b)s", str(b)).replace("%(query)s", "q")).format(
        **names(corpus)
    )
    nearest = sql.SQL(
        "SELECT e.chunk_id, (e.embedding::vector(384)) <=> emb::vector(384) AS distance FROM {partition} e "
        "ORDER BY (e.embedding::vector(384)) <=> emb::vector(384) LIMIT 100"
    ).format(partition=partition)
    settings = sql.SQL("SET hnsw.ef_search = 100 SET enable_seqscan = off SET plan_cache_mode = force_generic_plan")
    return [
        sql.SQL("""
            CREATE FUNCTION pg_temp.recipe_bm25(q text) RETURNS TABLE (chunk_id bigint, score double precision)
            LANGUAGE plpgsql STABLE {settings} AS $$ BEGIN RETURN QUERY {bm25}; END $$
            """).format(settings=settings, bm25=bm25),
        sql.SQL("""
            CREATE FUNCTION pg_temp.recipe_hnsw(emb vector) RETURNS TABLE (chunk_id bigint, distance double precision)
            LANGUAGE plpgsql STABLE {settings} AS $$ BEGIN RETURN QUERY {nearest}; END $$
            """).format(settings=settings, nearest=nearest),
        # search_peers.py's RRF(posting BM25, HNSW), documents joined on.
        sql.SQL("""
            CREATE FUNCTION pg_temp.rrf_recipe(q text, emb vector, k integer)
            RETURNS TABLE (chunk_id bigint, external_id text)
            LANGUAGE plpgsql STABLE {settings} AS $$
            BEGIN
                RETURN QUERY
                WITH bm25 AS ({bm25}), nearest AS ({nearest}),
                text_side AS (SELECT t.chunk_id, row_number() OVER (ORDER BY t.score DESC, t.chunk_id) AS rank
                              FROM bm25 t),
                vector_side AS (SELECT v.chunk_id, row_number() OVER (ORDER BY v.distance, v.chunk_id) AS rank
                                FROM nearest v)
                SELECT ranked.chunk_id, d.external_id
                FROM (SELECT coalesce(t.chunk_id, v.chunk_id) AS chunk_id,
                             coalesce(1.0 / (60 + t.rank), 0) + coalesce(1.0 / (60 + v.rank), 0) AS score
                      FROM text_side t FULL OUTER JOIN vector_side v ON v.chunk_id = t.chunk_id
                      ORDER BY score DESC, chunk_id
                      LIMIT k) ranked
                JOIN memora.chunk c ON c.collection_id = {collection_id} AND c.id = ranked.chunk_id
                JOIN memora.document d ON d.collection_id = c.collection_id AND d.id = c.document_id
                ORDER BY ranked.score DESC, ranked.chunk_id;
            END $$
            """).format(settings=settings, bm25=bm25, nearest=nearest, collection_id=sql.Literal(collection_id)),
        # What vector_candidates ran without a filter before the nearest functions: a statement built and
        # EXECUTEd on every call, so planned on every call (INDEX: with enable_seqscan off for the call).
        sql.SQL("""
            CREATE FUNCTION pg_temp.planned_per_call(p_collection_id bigint, p_embedding vector, p_limit integer,
                                                     index boolean)
            RETURNS TABLE (chunk_id bigint, distance double precision, rank integer)
            LANGUAGE plpgsql STABLE AS $$
            BEGIN
                PERFORM set_config('hnsw.ef_search', memora.hnsw_ef_search(NULL, p_limit)::text, true);
                PERFORM set_config('enable_seqscan', CASE WHEN index THEN 'off' ELSE 'on' END, true);
                RETURN QUERY EXECUTE format(
                    $sql$
                    WITH nearest AS MATERIALIZED (
                        SELECT e.chunk_id, (e.embedding::vector(384)) <=> $1::vector(384) AS distance
                        FROM memora.%I e
                        WHERE true
                        ORDER BY (e.embedding::vector(384)) <=> $1::vector(384)
                        LIMIT $2
                    )
                    SELECT n.chunk_id, n.distance, (row_number() OVER (ORDER BY n.distance, n.chunk_id))::integer
                    FROM nearest n
                    ORDER BY n.distance, n.chunk_id
                    $sql$, memora.version_table(p_collection_id, 1))
                USING p_embedding, p_limit;
                PERFORM set_config('enable_seqscan', 'on', true);
            END $$
            """),
    ]


def per_collection_functions(collection_id: int) -> list[sql.Composed]:
    """A hybrid function for one collection, as search_hybrid_v1 would call it if it made one per collection: its
    statement (defaults: convex, weights 1 : 1, 4 k candidates a side; cosine, the collection's metric) with the
    collection's id and nearest function written in, and a function that reaches it by name as search_hybrid_v1
    would: its argument checks, then one EXECUTE."""
    nearest = sql.Identifier("memora", f"embedding_c{collection_id}_v1_nearest")
    values = {"id": sql.Literal(collection_id), "nearest": nearest}
    return [
        sql.SQL("""
            CREATE FUNCTION pg_temp.hybrid_static(query text, query_embedding vector, k integer)
            RETURNS SETOF memora.search_hit
            LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan
            AS $$
            DECLARE
                depth integer := 4 * k;
                ignored text := set_config('hnsw.ef_search', memora.hnsw_ef_search(NULL, 4 * k)::text, true);
            BEGIN
                RETURN QUERY
                WITH lexical AS MATERIALIZED (
                    SELECT b.chunk_id, b.rank, b.score FROM memora.bm25_candidates({id}, query, depth) b
                ),
                semantic AS MATERIALIZED (
                    SELECT n.chunk_id, n.rank, n.distance, 1 - n.distance AS similarity
                    FROM {nearest}(query_embedding, depth) n
                ),
                fused AS (
                    SELECT coalesce(l.chunk_id, s.chunk_id) AS chunk_id,
                           (coalesce(memora.min_max(l.score, lr.low, lr.high), 0)
                            + coalesce(memora.min_max(s.similarity, sr.low, sr.high), 0)) / 2 AS score,
                           l.rank AS text_rank, l.score AS text_score, s.rank AS vector_rank, s.similarity, s.distance
                    FROM lexical l FULL JOIN semantic s ON s.chunk_id = l.chunk_id
                    CROSS JOIN (SELECT min(x.score) AS low, max(x.score) AS high FROM lexical x) lr
                    CROSS JOIN (SELECT min(y.similarity) AS low, max(y.similarity) AS high FROM semantic y) sr
                    ORDER BY 2 DESC, 1
                    LIMIT k
                )
                SELECT f.chunk_id, h.document_id, h.external_id, h.ordinal, h.title, h.text, h.metadata,
                       h.chunk_metadata, h.char_start, h.char_end, f.score, f.text_rank, f.text_score, f.vector_rank,
                       f.similarity, f.distance
                FROM fused f
                CROSS JOIN LATERAL memora.search_hit_row({id}, f.chunk_id) h
                ORDER BY f.score DESC, f.chunk_id;
            END $$
            """).format(**values),
        sql.SQL("""
            CREATE FUNCTION pg_temp.hybrid_dispatch(collection text, query text, query_embedding vector, k integer)
            RETURNS SETOF memora.search_hit
            LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
            AS $$
            DECLARE
                c memora.collection := memora.search_collection(collection);
            BEGIN
                PERFORM memora.check_search_arguments(c, k, NULL, query_embedding);
                RETURN QUERY EXECUTE format('SELECT * FROM pg_temp.%I($1, $2, $3)', 'hybrid_static')
                USING query, query_embedding, k;
            END $$
            """),
    ]


def timer(parts: list[str], collection: str, collection_id: int) -> sql.Composed:
    """pg_temp.time_parts(order): for each query (in ORDER), each part once in the order its row of
    pg_temp.part_orders gives, timed; rows (part, query, microseconds)."""
    values = {"collection": sql.Literal(collection).as_string(), "collection_id": str(collection_id),
              "nearest": f"embedding_c{collection_id}_v1_nearest"}  # fmt: skip
    branches = "\n".join(f"WHEN {i} THEN {PARTS[name].format(**values)};" for i, name in enumerate(parts, start=1))
    return sql.SQL("""
        CREATE FUNCTION pg_temp.time_parts() RETURNS TABLE (part integer, query integer, us double precision)
        LANGUAGE plpgsql AS $$
        DECLARE
            r record;
            p integer;
            t0 timestamptz;
        BEGIN
            FOR r IN SELECT o.position, q.i, q.q, q.e, o.parts
                     FROM pg_temp.part_orders o JOIN pg_temp.queries q ON q.i = o.query ORDER BY o.position LOOP
                FOREACH p IN ARRAY r.parts LOOP
                    t0 := clock_timestamp();
                    CASE p
                        {branches}
                    END CASE;
                    part := p; query := r.i; us := extract(epoch FROM clock_timestamp() - t0) * 1e6;
                    RETURN NEXT;
                END LOOP;
            END LOOP;
        END $$
        """).format(branches=sql.SQL(branches))


def measure(url: str, query_set: QuerySet, rounds: int, warmup: int, seed: int) -> dict[str, list[float]]:
    """Microseconds per call of each part, every round's calls (the first WARMUP queries of each round left out)."""
    rng = random.Random(seed)
    parts = list(PARTS)
    times: dict[str, list[float]] = {name: [] for name in parts}
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        k1, b = conn.execute(
            "SELECT bm25_k1, bm25_b FROM memora.collection WHERE id = %s", (query_set.collection_id,)
        ).fetchone()  # type: ignore[misc]
        for statement in [
            *recipe_functions(query_set.dataset.name, query_set.collection_id, k1, b),
            *per_collection_functions(query_set.collection_id),
        ]:
            conn.execute(statement)
        conn.execute("CREATE TEMP TABLE queries (i integer PRIMARY KEY, q text, e vector)")
        conn.execute("CREATE TEMP TABLE part_orders (position integer, query integer, parts integer[])")
        with conn.cursor().copy("COPY pg_temp.queries (i, q, e) FROM STDIN") as copy:
            for i, (query, embedding) in enumerate(zip(query_set.queries, query_set.embeddings, strict=True)):  # type: ignore[arg-type]
                copy.write_row((i, query.text, embedding))
        conn.execute(timer(parts, query_set.dataset.name, query_set.collection_id))
        for round_ in range(rounds):
            order = list(range(len(query_set.queries)))
            rng.shuffle(order)
            order = order[:warmup] + order
            conn.execute("TRUNCATE pg_temp.part_orders")
            with conn.cursor().copy("COPY pg_temp.part_orders FROM STDIN") as copy:
                for position, i in enumerate(order):
                    copy.write_row((position, i, rng.sample(range(1, len(parts) + 1), len(parts))))
            with console.status(f"{query_set.name}: round {round_ + 1} of {rounds}"):
                rows = conn.execute("SELECT part, us FROM pg_temp.time_parts()").fetchall()
            calls = len(parts)
            for part, us in rows[warmup * calls :]:
                times[parts[part - 1]].append(us)
    return times


def summarise(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    def p95(values: list[float]) -> float:
        return sorted(values)[int(0.95 * (len(values) - 1))]

    hybrid, recipe = times["search_hybrid_v1"], times["RRF recipe (static)"]
    out = {
        name: {"calls": len(values), "p50_us": round(statistics.median(values), 1), "p95_us": round(p95(values), 1),
               "mean_us": round(statistics.fmean(values), 1)}
        for name, values in times.items()
    }  # fmt: skip
    out["search_hybrid_v1"] |= {"p50 / recipe p50": round(statistics.median(hybrid) / statistics.median(recipe), 3),
                                "p95 / recipe p95": round(p95(hybrid) / p95(recipe), 3)}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="squad", help="query sets, comma-separated: squad, nfcorpus")
    parser.add_argument("--queries", type=int, default=300, help="judged queries per set, drawn at random")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the queries")
    parser.add_argument("--warmup", type=int, default=10, help="queries of each round left out of the figures")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "search_fixed_cost.json")
    args = parser.parse_args()
    sets = [name.strip() for name in args.sets.split(",") if name.strip()]
    for name in sets:
        if name not in ("squad", "nfcorpus"):
            parser.error(f"unknown query set {name!r}; choose squad or nfcorpus")
        if not SETS[name].exists():
            parser.error(f"{SETS[name]}: not found (the data lives in ../shared, outside the repository)")

    started = time.perf_counter()
    rng = random.Random(args.seed)
    results: dict[str, Any] = {}
    with scratch_database("memora_bench_fixed") as db:
        facts = {**machine(), **code_version(), **server_facts(db.url), "server": db.server}
        engine = make_engine(db.settings, "bench")
        embedder = CachedEmbedder(registry.get_embedder("local", MODEL, 384, db.settings))
        try:
            for name in sets:
                with console.status(f"reading {SETS[name]}"):
                    dataset = load_nfcorpus(SETS[name]) if name == "nfcorpus" else load_squad(SETS[name])
                query_set = choose(dataset, None, args.queries, rng)
                ingest_memora(db.settings, engine, query_set, embedder)
                documents = query_set.dataset.documents
                vectors = embedder.embed(document_texts(documents))
                query_set.facts |= load_peers(db.url, name, query_set.collection_id, documents, vectors)
                embed_queries(query_set, embedder)
                embedder.save()
                with psycopg.connect(db.url, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
                times = measure(db.url, query_set, args.rounds, args.warmup, args.seed)
                results[name] = {"corpus": query_set.facts, "parts": summarise(times)}
                rows = [
                    [part, row["p50_us"], row["p95_us"], row["mean_us"]] for part, row in results[name]["parts"].items()
                ]
                print_table(f"{name}: microseconds per call, in the server", ["part", "p50", "p95", "mean"], rows)
        finally:
            engine.dispose()
            embedder.save()
    print_facts("Machine and server", facts)
    console.print(f"wall time {time.perf_counter() - started:.0f} s")
    write_json(
        args.json,
        {
            "benchmark": "search_fixed_cost",
            "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "settings": {"k": 10, "Memora candidates a side": DEPTH, "Memora hnsw.ef_search": 64,
                         "recipe": "search_peers.py's RRF(posting BM25, HNSW): 100 a side, hnsw.ef_search 100",
                         "timing": "clock_timestamp() around each call, in one PL/pgSQL function in the server"},
            "machine": facts,
            "query_sets": results,
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
