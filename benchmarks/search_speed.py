"""Search speed on 100,000 chunks (or 10k, 1M: --rows): BM25, HNSW (recall against the exact scan), hybrid,
filtered, over REST, and beside them the posting-table recipe of benchmarks/peer_recipes.py.

Loads a corpus of topical bags of real words with all-MiniLM-L6-v2 vectors (benchmarks/search_corpus.py; the
vectors are computed once, 35-50 min here, and cached in benchmarks/.cache/) into a scratch database with the HNSW
and GIN indexes dropped and rebuilt around the load. Past --embedded-rows chunks (100,000), the text is generated as
before and the vectors are the embedded chunks' of the same topic plus Gaussian noise (--sigma; search_corpus.spread).
Three query sets: keyword queries (3-8 words), questions (8-20 words in the shape of SQuAD's questions, on a topic
of the corpus) and passages (chunks drawn like the corpus's, not loaded), each with the model's vectors. Then, over
one psycopg connection: the exact scans of every query, then memora.search_text / search_vector / search_hybrid for
every query set (--text-sets: which sets go to text and hybrid) and the filtered forms, with the posting-table BM25
and its RRF with HNSW (peer_recipes' statements, each on a connection of its own, on a posting table built from the
collection's chunks), in a shuffled order per query, then default vector search again for every query back to back
(as the exact scans are timed). Reports latency percentiles measured by the client and the server's CPU per call,
p50/p95 of each method and query set, recall@k of HNSW against search_vector(..., exact => true) for several
ef_search, the share of filtered queries that still get k rows, the time and disk of each load step, POST
/v1/collections/{name}/search through `memora serve` on loopback and, with --hnsw-sweep, vector search again with
other index parameters. The cases and the timing loop are in benchmarks/search_speed_cases.py. docs/benchmarks.md
describes the data and the figures; benchmarks/search_speed_chart.py draws p50 against size from the JSON of several
--rows.

    .venv/bin/python benchmarks/search_speed.py [--rows 100000] [--queries 300] [--hnsw-sweep 16:200] [--json PATH]
    .venv/bin/python benchmarks/search_speed.py --prepare-only     # compute and cache the vectors, then stop
    .venv/bin/python benchmarks/search_speed.py --rows 1000000 --queries 100 --text-sets keywords,questions \
        --rest-queries 0 --maintenance-work-mem 6GB --json ...     # 1M chunks (docs/benchmarks.md section 4)
"""

from __future__ import annotations

import argparse
import os
import re
import time
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
    scratch_database,
    server_facts,
    write_json,
)
from peer_recipes import BM25, RRF, load_postings
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb
from search_corpus import CACHE_DIR, Generator, cached, draw_queries, embed_cached, load, read_sources, spread
from search_rest import rest_latency
from search_speed_cases import (
    BUCKETS,
    COLLECTION,
    FILTER,
    PEERS,
    QUERY_SETS,
    Case,
    Inputs,
    back_to_back,
    cases,
    peer_cases,
    run,
)

from app.db.models import version_table

GOALS = {
    "vector recall@10, default ef_search: keyword queries": (">=", 0.95),
    "vector recall@10, default ef_search: passage queries": (">=", 0.95),
    "vector SQL p50 ms: keyword queries": ("<=", 2.0),
    "vector SQL p50 ms: passage queries": ("<=", 2.0),
    "exact / HNSW p50 (keyword queries)": (">=", 20.0),
    "text SQL p50 ms (3-8 words)": ("<=", 10.0),
    "hybrid SQL p50 ms": ("<=", 15.0),
    "hybrid REST p50 ms (with query embedding)": ("<=", 25.0),
    "filtered vector: share of queries with k rows": (">=", 0.99),
    "filtered text: share of queries with k rows": (">=", 0.99),
    "filtered hybrid: share of queries with k rows": (">=", 0.99),
}


def summarize(all_cases: list[Case], raw: dict[str, dict[str, list[Any]]], k: int) -> dict[str, dict[str, Any]]:
    summary = {}
    for case in all_cases:
        ms = np.array(raw[case.name]["ms"])
        entry: dict[str, Any] = {
            "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()),
            "max_ms": float(ms.max()),
            "server_cpu_mean_ms": float(np.mean(raw[case.name]["cpu_ms"])) if raw[case.name]["cpu_ms"] else None,
            "share_with_k_rows": float(np.mean(np.array(raw[case.name]["rows"]) >= k)),
            "statement": case.statement if isinstance(case.statement, str) else case.statement.as_string(),
        }
        if case.truth:
            truths = raw[case.truth]["ids"]
            pairs = zip(raw[case.name]["ids"], truths, strict=True)
            recalls = [len(set(got) & set(want)) / max(1, len(want)) for got, want in pairs]
            entry["recall_at_k"] = float(np.mean(recalls))
        summary[case.name] = entry
    for name, entry in summary.items():
        if name.startswith("vector"):
            query_set = next((f" ({s})" for s in QUERY_SETS if name.endswith(f"({s})")), "")
            entry["exact_over_hnsw_p50"] = summary[f"exact{query_set}"]["p50_ms"] / entry["p50_ms"]
    return summary


def by_query_set(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """p50 and p95 of each method on each query set, from the cases measured."""
    found = []
    for method in ("text", "vector", "hybrid", BM25, RRF):
        for query_set in QUERY_SETS:
            entry = summary.get(method if query_set == "keywords" else f"{method} ({query_set})")
            if entry:
                figures = {key: entry[key] for key in ("p50_ms", "p95_ms", "server_cpu_mean_ms")}
                found.append({"method": method, "query_set": query_set, **figures})
    return found


def against_recipes(raw: dict[str, dict[str, list[Any]]]) -> list[dict[str, Any]]:
    """Memora's text and hybrid search against the posting-table BM25 and its RRF on each query set: the ratio of
    their p50 and of their p95, and the median of the per-query ratios (both timed for the same query, one after
    the other in a shuffled order). Below 1: Memora's is faster."""
    found = []
    for query_set in QUERY_SETS:
        suffix = "" if query_set == "keywords" else f" ({query_set})"
        for ours, theirs in (("text", BM25), ("hybrid", RRF)):
            if f"{ours}{suffix}" in raw and f"{theirs}{suffix}" in raw:
                a, b = np.array(raw[f"{ours}{suffix}"]["ms"]), np.array(raw[f"{theirs}{suffix}"]["ms"])
                found.append({"query_set": query_set, "memora": ours, "recipe": theirs,
                              "p50_ratio": float(np.percentile(a, 50) / np.percentile(b, 50)),
                              "p95_ratio": float(np.percentile(a, 95) / np.percentile(b, 95)),
                              "per_query_median_ratio": float(np.median(a / b))})  # fmt: skip
    return found


def by_length(queries: list[str], ms: list[float]) -> dict[str, dict[str, float]]:
    """Text search latency by query length (words)."""
    groups: dict[str, list[float]] = {}
    for query, value in zip(queries, ms, strict=True):
        words = len(query.split())
        groups.setdefault(f"{words - (words + 1) % 2}-{words - (words + 1) % 2 + 1} words", []).append(value)
    return {
        name: {"queries": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}
        for name, ms in sorted(groups.items(), key=lambda item: int(item[0].split("-")[0]))
    }


def explain(inputs: Inputs, all_cases: list[Case]) -> dict[str, list[str]]:
    """EXPLAIN ANALYZE of the first query of INPUTS for every case, the statements inside the functions included
    (auto_explain's nested statements, sent to the client as LOG messages)."""
    plans: dict[str, list[str]] = {}
    messages: list[str] = []
    for conn in inputs.connections.values():
        conn.add_notice_handler(lambda diag: messages.append(diag.message_primary or ""))
        try:
            conn.execute("LOAD 'auto_explain'")
        except psycopg.Error as exc:
            return {"unavailable": [str(exc)]}
        for setting in ("log_min_duration = 0", "log_analyze = on", "log_nested_statements = on", "log_buffers = on"):
            conn.execute(f"SET auto_explain.{setting}")
        conn.execute("SET client_min_messages = log")
    query = inputs.params[0]
    for case in all_cases:
        messages.clear()
        params = query | {name: query[source] for name, source in case.renames.items()}
        inputs.connections[case.connection].execute(case.statement, params).fetchall()
        # Vectors as parameters would fill pages; their first values say enough.
        plans[case.name] = [re.sub(r"(\[[-0-9.e,]{60})[-0-9.e,]*\]", r"\1...]", m) for m in messages if "plan:" in m]
    for conn in inputs.connections.values():
        conn.execute("RESET client_min_messages")
        conn.execute("SET auto_explain.log_min_duration = -1")
    return plans


def sweep(
    inputs: Inputs, collection_id: int, configs: list[tuple[int, int]], all_cases: list[Case],
    raw: dict[str, dict[str, list[Any]]], seed: int, bar: Any,
) -> list[dict[str, Any]]:  # fmt: skip
    """Rebuild the index with each (m, ef_construction) and measure vector search again, recall against the exact
    answers of the main measurement. Runs last: it leaves the collection with the last index."""
    vector_cases = [c for c in all_cases if c.truth and c.truth.startswith("exact")]
    conn = inputs.connections["memora"]
    results = []
    for m, ef_construction in configs:
        task = bar.add_task(f"HNSW m={m} ef_construction={ef_construction}: building", total=None)
        start = time.perf_counter()
        conn.execute(
            "UPDATE memora.collection SET hnsw_m = %s, hnsw_ef_construction = %s WHERE id = %s",
            (m, ef_construction, collection_id),
        )
        build = time.perf_counter() - start
        size = conn.execute(
            "SELECT pg_relation_size(%s::regclass)", (f"memora.{version_table(collection_id, 1)}_hnsw",)
        ).fetchone()[0]  # type: ignore[index]
        bar.remove_task(task)
        run(inputs.part(0, 20), vector_cases, seed, bar, "warm-up")
        found = run(inputs, vector_cases, seed + 1, bar, f"m={m} ef_construction={ef_construction}")
        cases = {}
        for case in vector_cases:
            assert case.truth is not None
            pairs = zip(found[case.name]["ids"], raw[case.truth]["ids"], strict=True)
            cases[case.name] = {
                "p50_ms": float(np.percentile(found[case.name]["ms"], 50)),
                "server_cpu_mean_ms": float(np.mean(found[case.name]["cpu_ms"]))
                if found[case.name]["cpu_ms"]
                else None,
                "recall_at_k": float(np.mean([len(set(a) & set(b)) / max(1, len(b)) for a, b in pairs])),
            }
        results.append(
            {"m": m, "ef_construction": ef_construction, "build_seconds": build, "index_bytes": size, "cases": cases}
        )
    return results


def verdicts(summary: dict[str, dict[str, Any]], rest: dict[str, Any] | None) -> list[dict[str, Any]]:
    measured = {
        "vector recall@10, default ef_search: keyword queries": summary["vector"]["recall_at_k"],
        "vector recall@10, default ef_search: passage queries": summary["vector (passages)"]["recall_at_k"],
        "vector SQL p50 ms: keyword queries": summary["vector"]["p50_ms"],
        "vector SQL p50 ms: passage queries": summary["vector (passages)"]["p50_ms"],
        "exact / HNSW p50 (keyword queries)": summary["vector"]["exact_over_hnsw_p50"],
        "text SQL p50 ms (3-8 words)": summary["text"]["p50_ms"],
        "hybrid SQL p50 ms": summary["hybrid"]["p50_ms"],
        "hybrid REST p50 ms (with query embedding)": rest["p50_ms"] if rest and "p50_ms" in rest else None,
        "filtered vector: share of queries with k rows": summary["filtered vector"]["share_with_k_rows"],
        "filtered text: share of queries with k rows": summary["filtered text"]["share_with_k_rows"],
        "filtered hybrid: share of queries with k rows": summary["filtered hybrid"]["share_with_k_rows"],
    }
    found = []
    for goal, (sense, target) in GOALS.items():
        value = measured[goal]
        met = None if value is None else (value >= target if sense == ">=" else value <= target)
        found.append({"goal": goal, "target": f"{sense} {target:g}", "measured": value, "met": met})
    return found


def report(
    summary: dict[str, dict[str, Any]], sets: list[dict[str, Any]], lengths: dict[str, Any], goals: list[dict[str, Any]]
) -> None:
    print_table("p50 / p95 ms by method and query set", ["method", *QUERY_SETS],
                [[method, *(next((f"{e['p50_ms']:.2f} / {e['p95_ms']:.2f}" for e in sets
                                  if e["method"] == method and e["query_set"] == q), "-") for q in QUERY_SETS)]
                 for method in dict.fromkeys(e["method"] for e in sets)])  # fmt: skip
    print_table(
        "Search latency over psycopg (ms, client side, prepared statements)",
        ["case", "p50", "p95", "p99", "mean", "server CPU mean", "recall@k", "exact/HNSW p50", "share with k rows"],
        [[name, s["p50_ms"], s["p95_ms"], s["p99_ms"], s["mean_ms"], s["server_cpu_mean_ms"], s.get("recall_at_k"),
          s.get("exact_over_hnsw_p50"),
          s["share_with_k_rows"]] for name, s in summary.items()],
    )  # fmt: skip
    print_table("Text search by query length (ms)", ["words", "queries", "p50", "p95"],
                [[name, g["queries"], g["p50_ms"], g["p95_ms"]] for name, g in lengths.items()])  # fmt: skip
    print_table(
        "Goals", ["goal", "target", "measured", "met"],
        [[g["goal"], g["target"], g["measured"], {True: "met", False: "NOT met", None: "not measured"}[g["met"]]]
         for g in goals],
    )  # fmt: skip


def embedded(texts: list[str], label: str, bar: Any, facts: dict[str, Any]) -> np.ndarray:
    """The local model's vectors of TEXTS (from benchmarks/.cache after the first run), with a progress bar."""
    task = bar.add_task(f"embedding {label} with the local model (cached after)", total=len(texts))
    start = time.perf_counter()
    vectors, cached = embed_cached(texts, label, lambda n: bar.advance(task, n))
    facts[label] = {"texts": len(texts), "seconds": time.perf_counter() - start, "cached": cached}
    bar.remove_task(task)
    return vectors


def disk(conn: psycopg.Connection[Any], collection_id: int) -> dict[str, int]:
    """Bytes on disk of the database and of each relation the searches read, each index on its own line."""
    partition = version_table(collection_id, 1)
    relations = {"chunk (heap and TOAST)": "memora.chunk", "chunk GIN (tsv)": "memora.ix_chunk_tsv",
                 "embedding partition (heap and TOAST)": f"memora.{partition}", "HNSW": f"memora.{partition}_hnsw",
                 "term_stats": "memora.term_stats", "document": "memora.document",
                 "peers: posting (heap)": f"peers.{PEERS}_posting",
                 "peers: posting key": f"peers.{PEERS}_posting_pkey"}  # fmt: skip
    found = {"database": conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]}  # type: ignore[index]
    for name, relation in relations.items():
        size = conn.execute("SELECT pg_table_size(to_regclass(%s))", (relation,)).fetchone()[0]  # type: ignore[index]
        if size is not None:
            found[name] = size
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="chunks in the collection")
    parser.add_argument("--embedded-rows", type=int, default=100_000,
                        help="chunks embedded by the model; later ones get a noisy copy of one of theirs")  # fmt: skip
    parser.add_argument("--sigma", type=float, default=0.015, help="noise per dimension of the copied vectors")
    parser.add_argument("--chunks-per-document", type=int, default=20)
    parser.add_argument("--words", type=int, default=60, help="words per chunk")
    parser.add_argument("--queries", type=int, default=300, help="queries of each set measured (after --warmup)")
    parser.add_argument("--warmup", type=int, default=30, help="queries run first and not measured")
    parser.add_argument("--text-sets", default="keywords,questions,passages",
                        help="query sets that go to text and hybrid search (keywords always do)")  # fmt: skip
    parser.add_argument("--no-peers", action="store_true", help="without the posting-table recipes")
    parser.add_argument("--maintenance-work-mem", help="for the index builds (e.g. 6GB at 1M chunks)")
    parser.add_argument("--rest-queries", type=int, default=300, help="REST requests measured (0: skip REST)")
    parser.add_argument(
        "--hnsw-sweep",
        default="",
        help="after the rest, rebuild the index with each M:EF_CONSTRUCTION (e.g. 16:200,32:128) and measure vector "
        "search again (each build takes minutes)",
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nfcorpus", type=Path, default=REPO_ROOT.parent / "shared/data/nfcorpus/corpus.jsonl")
    parser.add_argument("--squad", type=Path, default=REPO_ROOT.parent / "shared/data/squad/dev-v2.0.json")
    parser.add_argument("--prepare-only", action="store_true", help="build the corpus and cache its vectors, then stop")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    text_sets = list(dict.fromkeys(["keywords", *args.text_sets.split(",")]))
    assert set(text_sets) <= set(QUERY_SETS), f"--text-sets: {', '.join(QUERY_SETS)}"

    started = time.perf_counter()
    load_seconds: dict[str, float] = {}
    with console.status("drawing the corpus and the queries"):
        sources = read_sources(args.nfcorpus, args.squad)
        generator = Generator(sources, args.seed)
        start = time.perf_counter()
        corpus = generator.corpus(args.rows, args.chunks_per_document, args.words)
        load_seconds["text generation"] = time.perf_counter() - start
        drawn = draw_queries(generator, corpus, args.warmup + args.queries, args.words, args.squad)
        queries, passages, questions = drawn.keywords, drawn.passages, drawn.questions
    embedding: dict[str, Any] = {}
    # Fewer chunks than --embedded-rows are the first of that many (the generator draws documents one after
    # another), so their vectors are the first of those, if cached.
    larger = None
    if args.rows < args.embedded_rows and any(CACHE_DIR.glob(f"chunks-{args.embedded_rows}-*[0-9a-f].npy")):
        whole = Generator(sources, args.seed).corpus(args.embedded_rows, args.chunks_per_document, args.words).chunks
        assert whole[: args.rows] == corpus.chunks
        larger = cached(whole, "chunks")
    with progress() as bar:
        if larger is not None:
            chunk_vectors = larger[: args.rows]
            embedding["chunks"] = {"texts": args.rows, "cached": True, "first of": len(larger)}
        else:
            chunk_vectors = embedded(corpus.chunks[: args.embedded_rows], "chunks", bar, embedding)
        if args.rows > args.embedded_rows:
            task = bar.add_task(f"noisy copies of vectors (sigma {args.sigma})", total=args.rows - args.embedded_rows)
            start = time.perf_counter()
            chunk_vectors = spread(chunk_vectors, corpus, args.sigma, args.seed, lambda n: bar.advance(task, n))
            embedding["copies"] = {"chunks": args.rows - args.embedded_rows, "sigma": args.sigma,
                                   "seconds": time.perf_counter() - start}  # fmt: skip
            bar.remove_task(task)
        query_vectors = embedded(queries, "queries", bar, embedding)
        passage_vectors = embedded(passages, "passages", bar, embedding)
        question_vectors = embedded(questions, "questions", bar, embedding)
    data = {
        "sources": len(sources),
        "vocabulary": corpus.vocabulary,
        "documents": len(corpus.documents),
        "chunks": args.rows,
        "words_per_chunk": args.words,
        "mean_chunk_chars": float(np.mean([len(t) for t in corpus.chunks])),
        "queries": args.queries,
        "mean_query_words": float(np.mean([len(q.split()) for q in queries])),
        "mean_question_words": float(np.mean([len(q.split()) for q in questions])),
        "embedding": embedding,
    }
    console.print(f"corpus: {data}")
    if args.prepare_only:
        return
    w = args.warmup
    all_cases = cases(text_sets)
    streamed = back_to_back(all_cases)
    with scratch_database("memora_bench_search") as db:
        facts = {**machine(), **code_version(), **server_facts(db.url), "server": db.server}
        print_facts("Machine and server", facts)
        with progress() as bar:
            collection_id, seconds = load(db.url, corpus, chunk_vectors, COLLECTION, BUCKETS, bar,
                                          args.maintenance_work_mem)  # fmt: skip
            load_seconds |= seconds
            setups: dict[str, tuple[str, ...]] = {"memora": ()}
            if not args.no_peers:
                task = bar.add_task("the peers' posting table", total=None)
                start = time.perf_counter()
                data["postings"] = load_postings(db.url, PEERS, collection_id)
                load_seconds["peers: posting table"] = time.perf_counter() - start
                bar.remove_task(task)
                peers, peer_setups = peer_cases(collection_id, text_sets)
                all_cases += peers
                setups |= peer_setups
            console.print(f"loaded: {', '.join(f'{k} {v:.1f} s' for k, v in load_seconds.items())}")
            connections = {name: psycopg.connect(db.url, autocommit=True, application_name="memora-bench")
                           for name in setups}  # fmt: skip
            try:
                conn = connections["memora"]
                for name, statements in setups.items():
                    register_vector(connections[name])
                    for statement in statements:
                        connections[name].execute(statement)
                data["disk_bytes"] = disk(conn, collection_id)
                k1, b = conn.execute("SELECT bm25_k1, bm25_b FROM memora.collection WHERE id = %s",
                                     (collection_id,)).fetchone()  # type: ignore[misc]  # fmt: skip
                lexemes = "SELECT avg(length(to_tsvector('english', q)))::float FROM unnest(%s::text[]) q"
                data["mean_lexemes"] = {
                    name: conn.execute(lexemes, (texts,)).fetchone()[0]  # type: ignore[index]
                    for name, texts in (("keywords", queries), ("questions", questions), ("passages", passages))
                }
                inputs = Inputs([
                    {"collection": COLLECTION, "collection_id": collection_id, "k": args.k, "k1": k1, "b": b,
                     "filter": Jsonb(FILTER), "text": text, "vector": vector, "question": question,
                     "question_vector": question_vector, "passage_text": passage_text, "passage": passage}
                    for text, vector, question, question_vector, passage_text, passage in zip(
                        queries, query_vectors, questions, question_vectors, passages, passage_vectors, strict=True)
                ], connections)  # fmt: skip
                warm, timed = inputs.part(0, w), inputs.part(w)
                # The exact scans (the reference for recall) apart, before the rest: interleaved, their reads of
                # every vector would push the index out of the CPU caches before each search measured.
                exact = [c for c in all_cases if c.name.startswith(("exact", "filtered exact"))]
                searches = [c for c in all_cases if c not in exact]
                run(warm, exact, args.seed, bar, "warm-up")
                load_before = [round(x, 2) for x in os.getloadavg()]
                timing_started = time.perf_counter()
                raw = run(timed, exact, args.seed + 1, bar, "measuring exact scans")
                run(warm, searches, args.seed, bar, "warm-up")
                raw |= run(timed, searches, args.seed + 1, bar, "measuring searches")
                for case in streamed:
                    raw |= run(timed, [case], args.seed + 1, bar, f"measuring {case.name}")
                timing = {
                    "seconds": time.perf_counter() - timing_started,
                    "load_average_before": load_before,
                    "load_average_after": [round(x, 2) for x in os.getloadavg()],
                }
                plans = explain(timed, all_cases)
            finally:
                for connection in connections.values():
                    connection.close()
            rest = None
            if args.rest_queries:
                rest = rest_latency(db, COLLECTION, queries[w : w + args.rest_queries], args.k, args.seed, bar)
            swept = []
            if args.hnsw_sweep:
                configs = [(int(m), int(e)) for m, e in (c.split(":") for c in args.hnsw_sweep.split(","))]
                with psycopg.connect(db.url, autocommit=True, application_name="memora-bench") as conn:
                    register_vector(conn)
                    swept = sweep(Inputs(timed.params, {"memora": conn}), collection_id, configs, all_cases, raw,
                                  args.seed, bar)  # fmt: skip
    summary = summarize(all_cases + streamed, raw, args.k)
    sets = by_query_set(summary)
    ratios = against_recipes(raw)
    lengths = by_length(queries[w:], raw["text"]["ms"])
    question_lengths = by_length(questions[w:], raw["text (questions)"]["ms"]) if "questions" in text_sets else {}
    goals = verdicts(summary, rest)
    report(summary, sets, lengths, goals)
    if ratios:
        rows = [[f"{r['memora']} / {r['recipe']}", r["query_set"], r["p50_ratio"], r["p95_ratio"],
                 r["per_query_median_ratio"]] for r in ratios]  # fmt: skip
        print_table("Memora against the recipe (below 1: Memora faster)",
                    ["pair", "query set", "p50 ratio", "p95 ratio", "median per-query ratio"], rows)  # fmt: skip
    if question_lengths:
        rows = [[name, g["queries"], g["p50_ms"], g["p95_ms"]] for name, g in question_lengths.items()]
        print_table("Text search of questions by length (ms)", ["words", "queries", "p50", "p95"], rows)
    if swept:
        print_table(
            "HNSW parameters: recall@k against the exact scan, p50 ms",
            ["m:ef_construction", "build s", "index MB", *(c for c in swept[0]["cases"])],
            [[f"{r['m']}:{r['ef_construction']}", r["build_seconds"], r["index_bytes"] / 2**20,
              *(f"{v['recall_at_k']:.3f} / {v['p50_ms']:.2f}" for v in r["cases"].values())] for r in swept],
        )  # fmt: skip
    if rest:
        print_facts("REST: POST /v1/collections/{name}/search, hybrid, over HTTP on loopback", rest)
    print_facts("Load: seconds per step", load_seconds)
    print_facts("Disk: MB", {name: size / 2**20 for name, size in data["disk_bytes"].items()})
    slowest = sorted(zip(raw["text"]["ms"], queries[w:], strict=True), reverse=True)[:5]
    console.print(f"wall time {time.perf_counter() - started:.0f} s")
    write_json(
        args.json,
        {
            "benchmark": "search_speed",
            "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": facts,
            "data": data,
            "collection_id": collection_id,
            "load_seconds": load_seconds,
            "timing": timing,
            "goals": goals,
            "results": summary,
            "by_query_set": sets,
            "against_recipes": ratios,
            "text_by_query_length": lengths,
            "text_questions_by_length": question_lengths,
            "slowest_text_queries": [{"ms": ms, "query": q} for ms, q in slowest],
            "rest": rest,
            "hnsw_sweep": swept,
            "explain": plans,
            "example_queries": queries[w : w + 10],
            "example_questions": questions[w : w + 10],
        },
    )


if __name__ == "__main__":
    main()
