"""Where a REST search's time goes (issue 15): `POST /v1/collections/{name}/search` against SQL alone, part by part.

NFCorpus is stored as Memora chunks the way benchmarks/search_peers.py stores it (`memora ingest`'s path, vectors
from benchmarks/.cache where they are). `memora serve --no-worker` runs on it with MEMORA_SERVER_TIMING on, so
each response says where the server spent its time (app/observe/timing.py): `lookup` (the collection, before
embedding), `embed` (the query's embedding, local MiniLM), `search` (the SQL call), `commit`, `respond` (serialising
the response), `other` (request parsing and checks, access rules, the session's own statements); HTTP is the
client's time less the server's. Two query sets: NFCorpus's test queries (keywords) and the same made questions of
10-20 words (as benchmarks/load.py makes them).

Every query runs every case once, in a shuffled order per query, queries shuffled: REST text, REST hybrid (the
server embeds the query), REST hybrid with highlights; and SQL alone on a psycopg connection of the benchmark's own
(autocommit, prepared from the fifth run): search_text_v1, search_hybrid_v1 with the query's vector computed
beforehand and REST's defaults, the same with ts_headline in the statement (as the API now sends it) and followed by
the separate headlines statement (as it did), the BM25 side alone (search_text_v1 at hybrid's depth, 4 * k), the
embedding alone in this process, and the embedding run while the BM25 side runs on the connection (a thread waits
on it): what overlapping the two would save here.

    .venv/bin/python benchmarks/search_rest_parts.py                    # all of NFCorpus, 200 queries a set
    .venv/bin/python benchmarks/search_rest_parts.py --documents 1000 --queries 50   # quick
    git archive main | tar -x -C /tmp/before && .venv/bin/python benchmarks/search_rest_parts.py --baseline /tmp/before

--baseline serves another checkout beside this one, on the same database, and runs the REST cases against it too,
in the same shuffled turns: the paired difference per query is what the change between the two saves.
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from common import (
    REPO_ROOT,
    code_version,
    console,
    machine,
    memora_serve,
    print_facts,
    print_table,
    progress,
    scratch_database,
    server_facts,
    write_json,
)
from pgvector.psycopg import register_vector
from search_peers import SETS, CachedEmbedder, QuerySet, as_questions, choose, ingest_memora
from search_quality import load_nfcorpus
from write_variants import MODEL

from app.db.engine import make_engine
from app.embeddings import registry
from app.embeddings.local import LocalEmbedder
from app.eval.metrics import percentile
from app.search.repository import _HEADLINE_OPTIONS

K = 10
DEPTH = 4 * K  # hybrid's candidates a side (SearchRequest.candidates unset)
TIMING = "Server-Timing"
PARTS = ("lookup", "embed", "search", "highlight", "commit", "respond", "other", "http")

HYBRID_CALL = (
    "memora.search_hybrid_v1(%(collection)s, %(query)s, %(embedding)s, 10, NULL::jsonb, 'convex', 60, 1.0::float8, "
    "1.0::float8, NULL::integer, NULL::integer, false)"
)
HEADLINE = "ts_headline(c.language, c.text, memora.search_tsquery(c.language, %(query)s), %(options)s)"
SQL = {
    "SQL text": "SELECT * FROM memora.search_text_v1(%(collection)s, %(query)s, 10, NULL::jsonb)",
    "SQL hybrid": f"SELECT * FROM {HYBRID_CALL}",
    "SQL hybrid + highlights, one statement": (
        f"SELECT h.*, (SELECT {HEADLINE} FROM memora.chunk c JOIN memora.collection col ON col.id = c.collection_id "
        f"WHERE col.name = %(collection)s AND c.id = h.chunk_id) AS headline FROM {HYBRID_CALL} WITH ORDINALITY AS h "
        "ORDER BY h.ordinality"
    ),
    "SQL BM25 side (text at depth 40)": (
        f"SELECT * FROM memora.search_text_v1(%(collection)s, %(query)s, {DEPTH}, NULL::jsonb)"
    ),
}
HEADLINES = (
    f"SELECT c.id, {HEADLINE} AS headline FROM memora.chunk c JOIN memora.collection col ON col.id = c.collection_id "
    "WHERE col.name = %(collection)s AND c.id = ANY(%(ids)s::bigint[])"
)
TWO_STATEMENTS = "SQL hybrid + highlights, two statements"
REST: dict[str, dict[str, Any]] = {
    "REST text": {"mode": "text"},
    "REST hybrid": {"mode": "hybrid"},
    "REST hybrid + highlights": {"mode": "hybrid", "include": ["text", "metadata", "scores", "highlights"]},
}
EMBED = "embed alone (this process)"
BASELINE = " (baseline)"
SERIAL = "embed, then BM25 side"
OVERLAP = "embed while the BM25 side runs"


class Timed:
    """Latencies per case, and per REST case the Server-Timing parts of each request."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = {}
        self.parts: dict[str, list[dict[str, float]]] = {}

    def add(self, case: str, ms: float, parts: dict[str, float] | None = None) -> None:
        self.ms.setdefault(case, []).append(ms)
        if parts is not None:
            self.parts.setdefault(case, []).append(parts)


def server_parts(header: str, client_ms: float) -> dict[str, float]:
    named = dict(item.strip().split(";dur=") for item in header.split(","))
    parts = {name: float(ms) for name, ms in named.items()}
    parts["http"] = client_ms - parts["total"]
    return parts


def run(
    url: str, base_url: str, baseline_url: str | None, query_set: QuerySet, warmup: int, seed: int, bar: Any
) -> Timed:
    """Every case once per query (shuffled); the first WARMUP queries are not counted. With BASELINE_URL, the REST
    cases also against that server (another checkout, --baseline)."""
    rng = random.Random(seed)
    name = query_set.dataset.name
    path = f"/v1/collections/{name}/search"
    embedder = LocalEmbedder()
    timed = Timed()
    with (
        psycopg.connect(url, autocommit=True, application_name="bench-rest-parts") as conn,
        psycopg.connect(url, autocommit=True, application_name="bench-rest-parts-side") as side,
        httpx.Client(base_url=base_url, timeout=60) as client,
        httpx.Client(base_url=baseline_url or base_url, timeout=60) as baseline,
    ):
        register_vector(conn)
        order = list(range(len(query_set.queries)))
        rng.shuffle(order)
        cases = [*REST, *SQL, TWO_STATEMENTS, EMBED, SERIAL, OVERLAP]
        if baseline_url is not None:
            cases += [f"{case}{BASELINE}" for case in REST]
        task = bar.add_task(f"{query_set.name}: interleaved", total=warmup + len(order))
        for step, i in enumerate([*order[:warmup], *order]):
            query = query_set.queries[i].text
            assert query_set.embeddings is not None
            values = {"collection": name, "query": query, "embedding": query_set.embeddings[i],
                      "options": _HEADLINE_OPTIONS}  # fmt: skip
            rng.shuffle(cases)
            for case in cases:
                began = time.perf_counter()
                parts = None
                if case in REST:
                    response = client.post(path, json={"query": query, "k": K, **REST[case]})
                    ms = (time.perf_counter() - began) * 1000
                    response.raise_for_status()
                    parts = server_parts(response.headers[TIMING], ms)
                elif case.endswith(BASELINE):
                    baseline.post(
                        path, json={"query": query, "k": K, **REST[case.removesuffix(BASELINE)]}
                    ).raise_for_status()
                elif case in SQL:
                    conn.execute(SQL[case], values, prepare=True).fetchall()
                elif case == TWO_STATEMENTS:
                    rows = conn.execute(SQL["SQL hybrid"], values, prepare=True).fetchall()
                    conn.execute(HEADLINES, values | {"ids": [row[0] for row in rows]}, prepare=True).fetchall()
                elif case == EMBED:
                    embedder.embed([query])
                elif case == SERIAL:
                    embedder.embed([query])
                    side.execute(SQL["SQL BM25 side (text at depth 40)"], values, prepare=True).fetchall()
                else:
                    worker = threading.Thread(target=_bm25_side, args=(side, values))
                    worker.start()
                    embedder.embed([query])
                    worker.join()
                ms = (time.perf_counter() - began) * 1000
                if step >= warmup:
                    timed.add(case, ms, parts)
            bar.advance(task)
        bar.remove_task(task)
    return timed


def _bm25_side(conn: psycopg.Connection[Any], values: dict[str, Any]) -> None:
    conn.execute(SQL["SQL BM25 side (text at depth 40)"], values, prepare=True).fetchall()


def summarise(timed: Timed) -> dict[str, Any]:
    """p50/p95/mean of every case; for REST cases the median of each part and its median share of the total."""
    out: dict[str, Any] = {}
    for case, ms in timed.ms.items():
        row: dict[str, Any] = {"p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
                               "mean_ms": statistics.fmean(ms), "n": len(ms)}  # fmt: skip
        if case in timed.parts:
            requests = timed.parts[case]
            names = [p for p in PARTS if any(p in r for r in requests)]
            row["parts_p50_ms"] = {p: percentile([r.get(p, 0.0) for r in requests], 50) for p in names}
            shares = {p: [r.get(p, 0.0) / (r["total"] + r["http"]) for r in requests] for p in names}
            row["parts_median_share"] = {p: float(np.median(v)) for p, v in shares.items()}
            row["server_total_p50_ms"] = percentile([r["total"] for r in requests], 50)
        out[case] = row
    rest_sql = {"REST text": "SQL text", "REST hybrid": "SQL hybrid",
                "REST hybrid + highlights": "SQL hybrid + highlights, one statement"}  # fmt: skip
    for rest, sql in rest_sql.items():
        out[rest]["p50 / SQL p50"] = out[rest]["p50_ms"] / out[sql]["p50_ms"]
        out[rest]["p50 - SQL p50 (ms)"] = out[rest]["p50_ms"] - out[sql]["p50_ms"]
        if (before := timed.ms.get(f"{rest}{BASELINE}")) is not None:
            out[rest]["baseline - this, paired p50 ms"] = percentile(
                [b - a for a, b in zip(timed.ms[rest], before, strict=True)], 50
            )
    # Per query, paired: what the one statement saves over two, and what overlapping saves over running in turn.
    one, two = timed.ms["SQL hybrid + highlights, one statement"], timed.ms[TWO_STATEMENTS]
    out["paired"] = {
        "two statements - one, p50 ms": percentile([b - a for a, b in zip(one, two, strict=True)], 50),
        "serial - overlapped, p50 ms": percentile(
            [a - b for a, b in zip(timed.ms[SERIAL], timed.ms[OVERLAP], strict=True)], 50
        ),
    }
    return out


def report(name: str, summary: dict[str, Any]) -> None:
    rows = [[case, row["p50_ms"], row["p95_ms"], row["mean_ms"], row.get("p50 / SQL p50")]
            for case, row in summary.items() if case != "paired"]  # fmt: skip
    print_table(f"{name}: ms, every case once per query, interleaved", ["case", "p50", "p95", "mean", "/ SQL"], rows)
    for case in REST:
        row = summary[case]
        shares = ", ".join(f"{p} {row['parts_p50_ms'][p]:.2f} ms ({100 * s:.0f}%)"
                           for p, s in row["parts_median_share"].items())  # fmt: skip
        console.print(f"{case}: {shares}")
    console.print(f"paired: {summary['paired']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, help="documents of NFCorpus (default: all)")
    parser.add_argument("--queries", type=int, default=200, help="queries a set, drawn at random")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--baseline", type=Path, help="another checkout whose `memora serve` the REST cases also run")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "search_rest_parts.json")
    args = parser.parse_args()
    started = time.perf_counter()
    rng = random.Random(args.seed)
    with console.status("reading NFCorpus"):
        base = choose(load_nfcorpus(SETS["nfcorpus"]), args.documents, args.queries, rng)
    query_sets = [base, as_questions(base, rng)]
    results: dict[str, Any] = {}
    with scratch_database("memora_bench_rest_parts") as db:
        facts = {**machine(), **code_version(), **server_facts(db.url), "server": db.server}
        engine = make_engine(db.settings, "bench")
        embedder = CachedEmbedder(registry.get_embedder("local", MODEL, 384, db.settings))
        try:
            ingest_memora(db.settings, engine, base, embedder)
            for query_set in query_sets:
                query_set.embeddings = embedder.embed([q.text for q in query_set.queries])
            embedder.save()
        finally:
            engine.dispose()
        with (
            memora_serve(db.url, "--no-worker", MEMORA_SERVER_TIMING="true") as base_url,
            memora_serve(db.url, "--no-worker", checkout=args.baseline)
            if args.baseline
            else nullcontext() as baseline_url,
            progress() as bar,
        ):
            for query_set in query_sets:
                words = [len(q.text.split()) for q in query_set.queries]
                timed = run(db.url, base_url, baseline_url, query_set, args.warmup, args.seed, bar)
                summary = summarise(timed)
                results[query_set.name] = {
                    "queries": len(words), "query words p50": percentile(words, 50),
                    "query words min-max": f"{min(words)}-{max(words)}", "cases": summary,
                    "latencies_ms": {case: [round(ms, 3) for ms in v] for case, v in timed.ms.items()},
                }  # fmt: skip
                report(query_set.name, summary)
    facts["chunks"] = base.facts
    print_facts("Machine and server", facts)
    console.print(f"wall time {time.perf_counter() - started:.0f} s")
    write_json(
        args.json,
        {
            "benchmark": "search_rest_parts",
            "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "settings": {
                "k": K, "hybrid": "REST defaults: convex, weights 1/1, 4 * k candidates a side, ef_search 64",
                "REST": "memora serve --no-worker, MEMORA_SERVER_TIMING=true, one keep-alive httpx client",
                "SQL": "one psycopg connection, autocommit, prepare=True; the query's vector computed beforehand",
            },
            "machine": facts,
            "query_sets": results,
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
