"""Search speed on 100,000 chunks: BM25, HNSW (recall against the exact scan), hybrid, filtered, and over REST.

Loads a corpus of topical bags of real words with all-MiniLM-L6-v2 vectors (benchmarks/search_corpus.py; the
vectors are computed once, 35-50 min here, and cached in benchmarks/.cache/) into a scratch database with the HNSW
index dropped and rebuilt around the load. Then, over one psycopg connection: the exact scans of every query, then
memora.search_text / search_vector / search_hybrid and their filtered forms for every query, in a shuffled order per
query, then default vector search again for every query back to back (as the exact scans are timed). Reports
latency percentiles measured by the client and the server's CPU per call, recall@k of HNSW against
search_vector(..., exact => true) for several ef_search (keyword queries and passage-like ones), the share of
filtered queries that still get k rows, POST /v1/collections/{name}/search through `memora serve` on loopback and,
with --hnsw-sweep, vector search again with other index parameters. docs/benchmarks.md describes the data and the
figures.

    .venv/bin/python benchmarks/search_speed.py [--rows 100000] [--queries 300] [--hnsw-sweep 16:200] [--json PATH]
    .venv/bin/python benchmarks/search_speed.py --prepare-only     # compute and cache the vectors, then stop
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb
from search_corpus import Generator, embed_cached, load, read_sources
from search_rest import rest_latency

from app.db.models import embedding_partition

COLLECTION = "bench-search"
BUCKETS = 10
FILTER = {"bucket": 3}  # keeps 1 document in BUCKETS
EF_SEARCH = (40, 64, 100, 200)  # 40 is pgvector's default; search_vector without ef_search uses 64
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


@dataclass(frozen=True)
class Case:
    """One way of calling a search function, timed for every query."""

    name: str
    statement: str
    truth: str | None = None  # the case whose rows are the exact answer (for recall)


def cases() -> list[Case]:
    """Keyword queries (3-8 words) go to every function; their vectors are the model's embeddings of those words.
    Passage queries (held-out chunks of the corpus's kind, embedded) go to vector search only."""

    def call(function: str, arguments: str, extra: str = "") -> str:
        return f"SELECT * FROM memora.{function}(%(collection)s, {arguments}, %(k)s{extra})"

    text, filtered = "%(text)s", ", %(filter)s"
    found = []
    for vector, suffix in (("%(vector)s", ""), ("%(passage)s", " (passages)")):
        found += [
            Case(f"exact{suffix}", call("search_vector", vector, ", exact => true")),
            Case(f"vector{suffix}", call("search_vector", vector), truth=f"exact{suffix}"),
        ]
        found += [
            Case(f"vector ef={ef}{suffix}", call("search_vector", vector, f", ef_search => {ef}"), f"exact{suffix}")
            for ef in EF_SEARCH
        ]
    both = "%(text)s, %(vector)s"
    found += [
        Case("text", call("search_text", text)),
        Case("hybrid", call("search_hybrid", both)),
        Case("filtered exact", call("search_vector", "%(vector)s", filtered + ", exact => true")),
        Case("filtered vector", call("search_vector", "%(vector)s", filtered), truth="filtered exact"),
        Case("filtered text", call("search_text", text, filtered)),
        Case("filtered hybrid", call("search_hybrid", both, filtered)),
    ]
    return found


# -- the data --------------------------------------------------------------------------------------------------


# -- the measurement -------------------------------------------------------------------------------------------


def back_to_back(all_cases: list[Case]) -> list[Case]:
    """Default vector search again, each query after the last with nothing in between, as ANN benchmarks time it
    and as the exact scans are timed here (in the shuffled run, text and hybrid searches come between)."""
    return [
        Case(name.replace("vector", "vector, back to back"), case.statement, case.truth)
        for case in all_cases
        if (name := case.name) in ("vector", "vector (passages)")
    ]


def backend_cpu(conn: psycopg.Connection[Any]) -> Callable[[], float] | None:
    """Seconds of CPU the connection's server process has used so far, when it runs on this machine: a figure
    that other work on the machine moves much less than latency. Parallel workers' CPU is not in it."""
    path = Path(f"/proc/{conn.info.backend_pid}/schedstat")  # nanoseconds on a CPU, then waiting, then slices
    local = conn.info.host in ("127.0.0.1", "localhost", "::1") or conn.info.host.startswith("/")
    if not local or not path.exists():
        return None
    return lambda: int(path.read_text().split()[0]) / 1e9


def run(
    conn: psycopg.Connection[Any], all_cases: list[Case], queries: list[str], vectors: np.ndarray,
    passages: np.ndarray, k: int, seed: int, bar: Any, label: str,
) -> dict[str, dict[str, list[Any]]]:  # fmt: skip
    """Every case for every query, in a shuffled order per query: latencies (ms), server CPU (ms), chunk ids and
    row counts."""
    rng = np.random.default_rng(seed)
    cpu = backend_cpu(conn)
    found: dict[str, dict[str, list[Any]]] = {
        c.name: {"ms": [], "cpu_ms": [], "ids": [], "rows": []} for c in all_cases
    }
    task = bar.add_task(label, total=len(queries))
    for text, vector, passage in zip(queries, vectors, passages, strict=True):
        params = {"collection": COLLECTION, "text": text, "vector": vector, "passage": passage, "k": k}
        params["filter"] = Jsonb(FILTER)
        for index in rng.permutation(len(all_cases)):
            case = all_cases[index]
            before = cpu() if cpu else 0.0
            start = time.perf_counter()
            rows = conn.execute(case.statement, params, prepare=True).fetchall()
            found[case.name]["ms"].append(1000 * (time.perf_counter() - start))
            if cpu:
                found[case.name]["cpu_ms"].append(1000 * (cpu() - before))
            found[case.name]["ids"].append([row[0] for row in rows])
            found[case.name]["rows"].append(len(rows))
        bar.advance(task)
    bar.remove_task(task)
    return found


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
            "statement": case.statement,
        }
        if case.truth:
            truths = raw[case.truth]["ids"]
            pairs = zip(raw[case.name]["ids"], truths, strict=True)
            recalls = [len(set(got) & set(want)) / max(1, len(want)) for got, want in pairs]
            entry["recall_at_k"] = float(np.mean(recalls))
        summary[case.name] = entry
    for name, entry in summary.items():
        if name.startswith("vector"):
            exact = summary["exact (passages)" if name.endswith("(passages)") else "exact"]["p50_ms"]
            entry["exact_over_hnsw_p50"] = exact / entry["p50_ms"]
    return summary


def by_length(queries: list[str], ms: list[float]) -> dict[str, dict[str, float]]:
    """Text search latency by query length (words)."""
    groups: dict[str, list[float]] = {}
    for query, value in zip(queries, ms, strict=True):
        words = len(query.split())
        groups.setdefault(f"{words - (words + 1) % 2}-{words - (words + 1) % 2 + 1} words", []).append(value)
    return {
        name: {"queries": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}
        for name, ms in sorted(groups.items())
    }


def explain(
    conn: psycopg.Connection[Any], all_cases: list[Case], text: str, vector: np.ndarray, passage: np.ndarray, k: int
) -> dict[str, list[str]]:
    """EXPLAIN ANALYZE of one query per case, the statements inside the functions included (auto_explain's nested
    statements, sent to this client as LOG messages)."""
    plans: dict[str, list[str]] = {}
    messages: list[str] = []
    conn.add_notice_handler(lambda diag: messages.append(diag.message_primary or ""))
    try:
        conn.execute("LOAD 'auto_explain'")
    except psycopg.Error as exc:
        return {"unavailable": [str(exc)]}
    for setting in ("log_min_duration = 0", "log_analyze = on", "log_nested_statements = on", "log_buffers = on"):
        conn.execute(f"SET auto_explain.{setting}")
    conn.execute("SET client_min_messages = log")
    params = {"collection": COLLECTION, "text": text, "vector": vector, "passage": passage, "k": k}
    params["filter"] = Jsonb(FILTER)
    for case in all_cases:
        messages.clear()
        conn.execute(case.statement, params).fetchall()
        # Vectors as parameters would fill pages; their first values say enough.
        plans[case.name] = [re.sub(r"(\[[-0-9.e,]{60})[-0-9.e,]*\]", r"\1...]", m) for m in messages if "plan:" in m]
    conn.execute("RESET client_min_messages")
    conn.execute("SET auto_explain.log_min_duration = -1")
    return plans


def sweep(
    conn: psycopg.Connection[Any], collection_id: int, configs: list[tuple[int, int]], all_cases: list[Case],
    raw: dict[str, dict[str, list[Any]]], queries: list[str], vectors: np.ndarray, passages: np.ndarray, k: int,
    seed: int, bar: Any,
) -> list[dict[str, Any]]:  # fmt: skip
    """Rebuild the index with each (m, ef_construction) and measure vector search again, recall against the exact
    answers of the main measurement. Runs last: it leaves the collection with the last index."""
    vector_cases = [c for c in all_cases if c.truth and c.truth.startswith("exact")]
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
            "SELECT pg_relation_size(%s::regclass)", (f"memora.{embedding_partition(collection_id)}_hnsw",)
        ).fetchone()[0]  # type: ignore[index]
        bar.remove_task(task)
        run(conn, vector_cases, queries[:20], vectors[:20], passages[:20], k, seed, bar, "warm-up")
        found = run(
            conn, vector_cases, queries, vectors, passages, k, seed + 1, bar, f"m={m} ef_construction={ef_construction}"
        )
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


def report(summary: dict[str, dict[str, Any]], lengths: dict[str, Any], goals: list[dict[str, Any]]) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="chunks in the collection")
    parser.add_argument("--chunks-per-document", type=int, default=20)
    parser.add_argument("--words", type=int, default=60, help="words per chunk")
    parser.add_argument("--queries", type=int, default=300, help="queries measured (after --warmup others)")
    parser.add_argument("--warmup", type=int, default=30, help="queries run first and not measured")
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

    started = time.perf_counter()
    with console.status("drawing the corpus and the queries"):
        sources = read_sources(args.nfcorpus, args.squad)
        generator = Generator(sources, args.seed)
        corpus = generator.corpus(args.rows, args.chunks_per_document, args.words)
        queries = generator.queries(corpus, args.warmup + args.queries)
        # Chunks of documents drawn the same way but not loaded: queries that look like the corpus.
        passages = generator.corpus(args.warmup + args.queries, 1, args.words).chunks
    embedding: dict[str, Any] = {}
    with progress() as bar:
        chunk_vectors = embedded(corpus.chunks, "chunks", bar, embedding)
        query_vectors = embedded(queries, "queries", bar, embedding)
        passage_vectors = embedded(passages, "passages", bar, embedding)
    data = {
        "sources": len(sources),
        "vocabulary": corpus.vocabulary,
        "documents": len(corpus.documents),
        "chunks": args.rows,
        "words_per_chunk": args.words,
        "mean_chunk_chars": float(np.mean([len(t) for t in corpus.chunks])),
        "queries": args.queries,
        "mean_query_words": float(np.mean([len(q.split()) for q in queries])),
        "embedding": embedding,
    }
    console.print(f"corpus: {data}")
    if args.prepare_only:
        return
    warmup, measured = queries[: args.warmup], queries[args.warmup :]
    warmup_vectors, measured_vectors = query_vectors[: args.warmup], query_vectors[args.warmup :]
    warmup_passages, measured_passages = passage_vectors[: args.warmup], passage_vectors[args.warmup :]
    all_cases = cases()
    streamed = back_to_back(all_cases)
    with scratch_database("memora_bench_search") as db:
        facts = {**machine(), **code_version(), **server_facts(db.url), "server": db.server}
        print_facts("Machine and server", facts)
        with progress() as bar:
            collection_id, load_seconds = load(db.url, corpus, chunk_vectors, COLLECTION, BUCKETS, bar)
            console.print(f"loaded: {', '.join(f'{k} {v:.1f} s' for k, v in load_seconds.items())}")
            with psycopg.connect(db.url, autocommit=True, application_name="memora-bench") as conn:
                register_vector(conn)
                # The exact scans (the reference for recall) apart, before the rest: interleaved, their reads of
                # every vector would push the index out of the CPU caches before each search measured.
                exact = [c for c in all_cases if c.name.startswith(("exact", "filtered exact"))]
                searches = [c for c in all_cases if c not in exact]
                warm = (warmup, warmup_vectors, warmup_passages, args.k, args.seed, bar, "warm-up")
                timed = (measured, measured_vectors, measured_passages, args.k, args.seed + 1, bar)
                run(conn, exact, *warm)
                load_before = [round(x, 2) for x in os.getloadavg()]
                timing_started = time.perf_counter()
                raw = run(conn, exact, *timed, "measuring exact scans")
                run(conn, searches, *warm)
                raw |= run(conn, searches, *timed, "measuring searches")
                for case in streamed:
                    raw |= run(conn, [case], *timed, f"measuring {case.name}")
                timing = {
                    "seconds": time.perf_counter() - timing_started,
                    "load_average_before": load_before,
                    "load_average_after": [round(x, 2) for x in os.getloadavg()],
                }
                plans = explain(conn, all_cases, measured[0], measured_vectors[0], measured_passages[0], args.k)
            rest = None
            if args.rest_queries:
                rest = rest_latency(db, COLLECTION, measured[: args.rest_queries], args.k, args.seed, bar)
            swept = []
            if args.hnsw_sweep:
                configs = [(int(m), int(e)) for m, e in (c.split(":") for c in args.hnsw_sweep.split(","))]
                with psycopg.connect(db.url, autocommit=True, application_name="memora-bench") as conn:
                    register_vector(conn)
                    swept = sweep(
                        conn, collection_id, configs, all_cases, raw, measured, measured_vectors,
                        measured_passages, args.k, args.seed, bar,
                    )  # fmt: skip
    summary = summarize(all_cases + streamed, raw, args.k)
    lengths = by_length(measured, raw["text"]["ms"])
    goals = verdicts(summary, rest)
    report(summary, lengths, goals)
    if swept:
        print_table(
            "HNSW parameters: recall@k against the exact scan, p50 ms",
            ["m:ef_construction", "build s", "index MB", *(c for c in swept[0]["cases"])],
            [[f"{r['m']}:{r['ef_construction']}", r["build_seconds"], r["index_bytes"] / 2**20,
              *(f"{v['recall_at_k']:.3f} / {v['p50_ms']:.2f}" for v in r["cases"].values())] for r in swept],
        )  # fmt: skip
    if rest:
        print_facts("REST: POST /v1/collections/{name}/search, hybrid, over HTTP on loopback", rest)
    slowest = sorted(zip(raw["text"]["ms"], measured, strict=True), reverse=True)[:5]
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
            "text_by_query_length": lengths,
            "slowest_text_queries": [{"ms": ms, "query": q} for ms, q in slowest],
            "rest": rest,
            "hnsw_sweep": swept,
            "explain": plans,
            "example_queries": measured[:10],
        },
    )


if __name__ == "__main__":
    main()
