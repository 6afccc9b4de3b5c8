"""Memora's search side by side with the PostgreSQL recipes it competes with (issue 15, "Goals").

Each query set's corpus is loaded twice into one scratch database: as Memora chunks (`memora ingest`'s path: upsert,
then the worker until the queue is empty, with the local MiniLM model) and as the peers' one-row-per-document table
(id, content, a stored tsvector, a vector(384) with HNSW indexes), plus a posting side table (lexeme, chunk, tf, len)
built from the Memora chunks' tsvectors. Vectors (chunks, documents, queries) are cached in benchmarks/.cache, keyed
by text and model, since embedding is slow here. Then every method runs, SQL only, k = 10, each on a connection of
its own, interleaved per query: queries in a shuffled order, the methods in a shuffled order for each query.
Latency is one execute + fetch, the query's embedding computed beforehand. Quality (nDCG@10, recall@100) comes from a
second, untimed pass as `memora eval` computes it: Memora's modes through app/eval's rank_documents (200 chunks, more
until 100 documents), the recipes asked for 100 rows (fewer where the recipe caps them).

Query sets: NFCorpus's test queries over its corpus (keyword-ish); the same made questions of 10-20 words as
benchmarks/load.py makes them (long queries on a corpus of real size; their quality figures say little); SQuAD 2.0
dev's answerable questions over its paragraphs (natural-language questions, one relevant paragraph each).

    .venv/bin/python benchmarks/search_peers.py                                  # all documents, 300 queries a set
    .venv/bin/python benchmarks/search_peers.py --documents 2000 --queries 100   # quick: a few minutes
    .venv/bin/python benchmarks/search_peers.py --sets squad --json /tmp/peers.json

--documents keeps the documents the chosen queries judge relevant first, then others drawn at random; queries left
without a relevant document in the corpus are dropped.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import random
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from common import (
    REPO_ROOT,
    code_version,
    console,
    machine,
    patched,
    print_facts,
    print_table,
    progress,
    scratch_database,
    server_facts,
    write_json,
)
from fusion_study import Paired
from load import QUESTION_STARTS
from peer_recipes import BM25, HYBRID, QUALITY_K, RRF, SIDE, TEXT, K, Method, document_texts, load_peers, methods
from pgvector.psycopg import register_vector
from psycopg import sql
from search_quality import Dataset, load_nfcorpus, load_squad
from sqlalchemy.orm import Session
from write_variants import MODEL

import app.ingest.worker as worker_module
from app.cli.documents import wait_for_worker
from app.collections import service as collections
from app.collections.schemas import CollectionCreate
from app.db.engine import make_engine
from app.embeddings import registry
from app.embeddings.base import Vectors
from app.embeddings.local import BUNDLED_MODEL_SHA256
from app.eval.metrics import mean_scores, percentile, score
from app.eval.service import DEFAULT_DEPTH, JudgedQuery, judged_queries, rank_documents
from app.ingest import service as ingest
from app.ingest.files import UPSERT_BATCH

DATA = REPO_ROOT.parent / "shared" / "data"
SETS = {
    "nfcorpus": DATA / "nfcorpus",
    "nfcorpus-questions": DATA / "nfcorpus",
    "squad": DATA / "squad" / "dev-v2.0.json",
}
CACHE = Path(__file__).resolve().parent / ".cache" / f"search_peers-{BUNDLED_MODEL_SHA256[:12]}.npz"


class CachedEmbedder:
    """An embedder that keeps every vector it computes in benchmarks/.cache, keyed by the text's sha256."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.provider, self.model, self.dimensions = inner.provider, inner.model, inner.dimensions
        self.max_input_tokens, self.tokenizer = inner.max_input_tokens, inner.tokenizer
        self.vectors: dict[bytes, np.ndarray] = {}
        self.computed = 0
        self.lock = threading.Lock()
        if CACHE.is_file():
            stored = np.load(CACHE)
            self.vectors = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))

    def embed(self, texts: Sequence[str]) -> Vectors:
        keys = [hashlib.sha256(text.encode()).digest() for text in texts]
        with self.lock:
            missing = list(dict.fromkeys(key for key in keys if key not in self.vectors))
        if missing:
            by_key = dict(zip(keys, texts, strict=True))
            for start in range(0, len(missing), 64):
                batch = missing[start : start + 64]
                for key, vector in zip(batch, self.inner.embed([by_key[k] for k in batch]), strict=True):
                    with self.lock:
                        self.vectors[key] = vector
                self.computed += len(batch)
        with self.lock:
            return np.stack([self.vectors[key] for key in keys]).astype(np.float32)

    def save(self) -> None:
        if not self.computed:
            return
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            keys = np.array(list(self.vectors), dtype="S32")
            vectors = np.stack(list(self.vectors.values()))
        temporary = CACHE.with_suffix(".partial.npz")
        np.savez(temporary, keys=keys, vectors=vectors)
        temporary.replace(CACHE)


@dataclass
class QuerySet:
    """A corpus (a subset of the dataset's documents) and its judged queries."""

    name: str
    dataset: Dataset
    queries: list[JudgedQuery]
    embeddings: Vectors | None = None
    collection_id: int = 0
    facts: dict[str, Any] = field(default_factory=dict)


def choose(dataset: Dataset, documents: int | None, queries: int | None, rng: random.Random) -> QuerySet:
    """QUERIES judged queries drawn at random; the documents they judge relevant, then others, up to DOCUMENTS."""
    judged = judged_queries(dataset.queries, dataset.qrels)
    rng.shuffle(judged)
    judged = judged[:queries] if queries else judged
    if documents and documents < len(dataset.documents):
        relevant = list(dict.fromkeys(d for q in judged for d, grade in q.judgments.items() if grade > 0))
        others = [d.external_id for d in dataset.documents]
        rng.shuffle(others)
        keep = set(list(dict.fromkeys([*relevant, *others]))[:documents])
        dataset = replace(dataset, documents=[d for d in dataset.documents if d.external_id in keep])
    present = {d.external_id for d in dataset.documents}
    kept = [q for q in judged if any(grade > 0 and d in present for d, grade in q.judgments.items())]
    return QuerySet(dataset.name, dataset, kept, facts={"queries dropped (no relevant document kept)":
                                                        len(judged) - len(kept)})  # fmt: skip


def as_questions(base: QuerySet, rng: random.Random) -> QuerySet:
    """BASE's queries made questions of 10-20 words as benchmarks/load.py makes them: a question's opening, the query,
    then words drawn from the corpus's vocabulary; the same judgments, over the same corpus."""
    vocabulary = [w for d in base.dataset.documents[:500] for w in d.content.split() if len(w) > 4 and w.isalpha()]
    questions = []
    for query in base.queries:
        words = f"{rng.choice(QUESTION_STARTS)} {query.text}".split()
        while len(words) < rng.randint(10, 20):
            words.append(rng.choice(vocabulary))
        questions.append(replace(query, text=" ".join(words[:20]) + "?"))
    return QuerySet(f"{base.name}-questions", base.dataset, questions, facts=dict(base.facts))


def ingest_memora(db_settings: Any, engine: Any, query_set: QuerySet, embedder: CachedEmbedder) -> None:
    """The corpus as Memora chunks: a collection with the defaults, upserted, then the worker (its embeddings come
    from the cache where it has them)."""
    dataset = query_set.dataset
    with Session(engine) as db, db.begin():
        collection = collections.create(db, CollectionCreate(name=dataset.name))
        query_set.collection_id = collection.id
        model = (collection.embedding_provider, collection.embedding_model, collection.dimensions)
        assert model == ("local", MODEL, 384), model
        assert str(collection.language) == "english", collection.language
    began = time.perf_counter()
    with progress() as bar:
        task = bar.add_task(f"{dataset.name}: upsert documents", total=len(dataset.documents))
        for start in range(0, len(dataset.documents), UPSERT_BATCH):
            batch = dataset.documents[start : start + UPSERT_BATCH]
            with Session(engine) as db, db.begin():
                ingest.upsert(db, collections.get(db, dataset.name), batch)
            bar.advance(task, len(batch))
    upserted = time.perf_counter()
    with patched(worker_module, "get_embedder", lambda *_: embedder):
        counts = wait_for_worker(db_settings, engine, dataset.name)
    assert counts.get("ready", 0) == len(dataset.documents), counts
    query_set.facts |= {"upsert s": round(upserted - began, 1), "worker s": round(time.perf_counter() - upserted, 1)}


@dataclass
class Figures:
    """One method's latencies (timed pass), rows at k 10, and rankings of the quality pass."""

    latencies_ms: list[float] = field(default_factory=list)
    top: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # query index -> its rows at k 10
    rankings: dict[int, list[str]] = field(default_factory=dict)  # query index -> documents, quality pass


def parameters(query_set: QuerySet, i: int, k: int, k1: float, b: float) -> dict[str, Any]:
    embedding = query_set.embeddings[i] if query_set.embeddings is not None else None
    return {"collection": query_set.dataset.name, "collection_id": query_set.collection_id,
            "query": query_set.queries[i].text, "embedding": embedding, "k": k, "k1": k1, "b": b}  # fmt: skip


def run(
    url: str, engine: Any, query_set: QuerySet, warmup: int, seed: int, explain: Path | None = None
) -> dict[str, Figures]:
    """The timed pass (interleaved, shuffled) and the quality pass of every method on QUERY_SET; with EXPLAIN, each
    method's plan of the first query (EXPLAIN ANALYZE, BUFFERS) written there, one file a method."""
    rng = random.Random(seed)
    chosen = methods(query_set.dataset.name, query_set.collection_id)
    figures = {method.name: Figures() for method in chosen}
    connections = {}
    try:
        for method in chosen:
            conn = psycopg.connect(url, autocommit=True, application_name="bench-peers")
            register_vector(conn)
            for statement in method.setup:
                conn.execute(statement)
            connections[method.name] = conn
        k1, b = (
            connections[BM25]
            .execute("SELECT bm25_k1, bm25_b FROM memora.collection WHERE id = %s", (query_set.collection_id,))
            .fetchone()
        )  # type: ignore[misc]
        order = list(range(len(query_set.queries)))
        rng.shuffle(order)
        with progress() as bar:
            task = bar.add_task(f"{query_set.name}: timed pass", total=warmup + len(order))
            for step, i in enumerate([*order[:warmup], *order]):
                shuffled = list(chosen)
                rng.shuffle(shuffled)
                for method in shuffled:
                    values = parameters(query_set, i, K, k1, b)
                    began = time.perf_counter()
                    rows = connections[method.name].execute(method.statement, values).fetchall()
                    elapsed_ms = (time.perf_counter() - began) * 1000
                    if step >= warmup:
                        figures[method.name].latencies_ms.append(elapsed_ms)
                        figures[method.name].top[i] = [(int(key), str(external_id)) for key, external_id in rows]
                bar.advance(task)
            task = bar.add_task(f"{query_set.name}: quality pass", total=len(chosen) * len(order))
            with engine.connect() as conn:
                for method in chosen:
                    for i in order:
                        if method.mode is not None:
                            embedding = query_set.embeddings[i] if method.needs_embedding else None  # type: ignore[index]
                            ranking = rank_documents(conn, method.mode, query_set.dataset.name,
                                                     query_set.queries[i].text, embedding, DEFAULT_DEPTH,
                                                     method.params)  # fmt: skip
                        else:
                            values = parameters(query_set, i, method.quality_k, k1, b)
                            rows = connections[method.name].execute(method.statement, values).fetchall()
                            ranking = list(dict.fromkeys(str(external_id) for _, external_id in rows))
                        figures[method.name].rankings[i] = ranking
                        bar.advance(task)
        if explain is not None:
            write_plans(explain, query_set, chosen, connections, parameters(query_set, order[0], K, k1, b))
    finally:
        for conn in connections.values():
            conn.close()
    return figures


# auto_explain, sent to the client: the plans of the statements inside functions (EXPLAIN shows a Function Scan).
NESTED_PLANS = (
    "LOAD 'auto_explain'",
    "SET auto_explain.log_min_duration = 0",
    "SET auto_explain.log_nested_statements = on",
    "SET auto_explain.log_analyze = on",
    "SET auto_explain.log_buffers = on",
    "SET client_min_messages = log",
)


def _keep_notice(messages: list[str], notice: Any) -> None:
    messages.append(str(notice.message_primary))


def write_plans(
    directory: Path,
    query_set: QuerySet,
    chosen: list[Method],
    connections: dict[str, psycopg.Connection[Any]],
    values: dict[str, Any],
) -> None:
    """Each method's EXPLAIN (ANALYZE, BUFFERS) of one query in DIRECTORY, then the plans auto_explain logs while it
    runs: for the functions (Memora's, Supabase's), those of the statements inside."""
    directory.mkdir(parents=True, exist_ok=True)
    for method in chosen:
        conn = connections[method.name]
        nested: list[str] = []
        conn.add_notice_handler(functools.partial(_keep_notice, nested))
        for statement in NESTED_PLANS:
            conn.execute(statement)
        plan = conn.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") + method.statement, values).fetchall()
        conn.execute("SET client_min_messages = notice")
        conn.execute("SET auto_explain.log_min_duration = -1")
        slug = re.sub(r"[^a-z0-9]+", "-", method.name.lower()).strip("-")
        text = "\n".join(str(row[0]) for row in plan)
        inner = "".join(f"\n-- nested (auto_explain):\n{message}\n" for message in nested)
        (directory / f"{query_set.name}-{slug}.txt").write_text(f"-- {values['query']}\n{text}\n{inner}")


def summarise(query_set: QuerySet, figures: dict[str, Figures]) -> dict[str, Any]:
    """Per method: nDCG@10, recall@100 (quality pass), nDCG@10 of the k = 10 rows, p50/p95, ratios to the posting
    table's BM25 and RRF; and how often the posting BM25's top 10 chunks are search_text's."""
    queries = query_set.queries
    out: dict[str, Any] = {}
    per_query: dict[str, list[float]] = {}
    for name, result in figures.items():
        scores = [score(result.rankings[i], q.judgments) for i, q in enumerate(queries)]
        per_query[name] = [s.ndcg_10 for s in scores]
        quality = mean_scores(scores)
        at_k = mean_scores([score(list(dict.fromkeys(e for _, e in result.top[i])), q.judgments)
                            for i, q in enumerate(queries)])  # fmt: skip
        out[name] = {
            "ndcg@10": quality["ndcg@10"],
            "recall@100": quality["recall@100"],
            "ndcg@10 of the k = 10 rows": at_k["ndcg@10"],
            "p50_ms": percentile(result.latencies_ms, 50),
            "p95_ms": percentile(result.latencies_ms, 95),
            "mean_documents_ranked": sum(map(len, result.rankings.values())) / max(len(queries), 1),
            "latencies_ms": [round(ms, 3) for ms in result.latencies_ms],  # in the order they ran
            "ndcg@10 per query": [round(x, 4) for x in per_query[name]],  # in the order of the query set
        }
    for row in out.values():
        for peer, label in ((BM25, "BM25"), (RRF, "RRF")):
            for p in ("p50", "p95"):
                row[f"{p} / {label} {p}"] = row[f"{p}_ms"] / out[peer][f"{p}_ms"] if out[peer][f"{p}_ms"] else None
        row["ndcg@10 - memora hybrid"] = row["ndcg@10"] - out[HYBRID]["ndcg@10"]
    text, bm25 = figures[TEXT].top, figures[BM25].top
    same = sum(1 for i in text if [key for key, _ in text[i]] == [key for key, _ in bm25[i][:K]])
    text_row, bm25_row = out[TEXT], out[BM25]
    hybrid_row, rrf_row = out[HYBRID], out[RRF]
    goals = {
        "search_text p50 <= posting BM25 p50": text_row["p50_ms"] <= bm25_row["p50_ms"],
        "search_text p95 <= posting BM25 p95": text_row["p95_ms"] <= bm25_row["p95_ms"],
        "search_hybrid p50 <= RRF p50": hybrid_row["p50_ms"] <= rrf_row["p50_ms"],
        "search_hybrid p95 <= RRF p95": hybrid_row["p95_ms"] <= rrf_row["p95_ms"],
        "search_hybrid nDCG@10 >= RRF + 0.01": hybrid_row["ndcg@10"] >= rrf_row["ndcg@10"] + 0.01,
    }
    # Whether hybrid's margin over the recipe is more than these queries' noise: the per-query difference's mean with
    # a 95% bootstrap interval (10,000 resamples of the queries), and the queries each ranks better.
    margin = Paired(per_query[RRF], 10_000, seed=15).compare(per_query[HYBRID])
    return {"methods": out, "queries where the posting BM25's top 10 chunks are search_text's": same, "goals": goals,
            "hybrid - RRF nDCG@10, per query": margin}  # fmt: skip


def embed_queries(query_set: QuerySet, embedder: CachedEmbedder) -> None:
    texts = [q.text for q in query_set.queries]
    with console.status(f"{query_set.name}: embedding {len(texts)} queries"):
        query_set.embeddings = embedder.embed(texts)
    words = [len(text.split()) for text in texts]
    query_set.facts |= {"queries": len(texts), "query words p50": percentile(words, 50),
                        "query words min-max": f"{min(words)}-{max(words)}"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS), help=f"query sets, comma-separated: {', '.join(SETS)}")
    parser.add_argument("--documents", type=int, help="documents per corpus (default: all)")
    parser.add_argument("--queries", type=int, default=300, help="judged queries per set, drawn at random")
    parser.add_argument("--warmup", type=int, default=5, help="queries run through every method before timing")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--explain", type=Path, help="write each method's plan of one query to this directory")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "search_peers.json")
    args = parser.parse_args()
    names = [name.strip() for name in args.sets.split(",") if name.strip()]
    if unknown := [name for name in names if name not in SETS]:
        parser.error(f"unknown query sets {unknown}; choose from {sorted(SETS)}")
    for name in names:
        if not SETS[name].exists():
            parser.error(f"{SETS[name]}: not found (the data lives in ../shared, outside the repository)")

    started = time.perf_counter()
    rng = random.Random(args.seed)
    query_sets, chosen = [], {}
    for name in names:
        corpus = name.removesuffix("-questions")
        if corpus not in chosen:
            with console.status(f"reading {SETS[name]}"):
                dataset = load_nfcorpus(SETS[name]) if corpus == "nfcorpus" else load_squad(SETS[name])
            chosen[corpus] = choose(dataset, args.documents, args.queries, rng)
        query_sets.append(as_questions(chosen[corpus], rng) if name != corpus else chosen[corpus])
    results: dict[str, Any] = {}
    with scratch_database("memora_bench_peers") as db:
        facts = {**machine(), **code_version(), **server_facts(db.url), "server": db.server}
        engine = make_engine(db.settings, "bench")
        embedder = CachedEmbedder(registry.get_embedder("local", MODEL, 384, db.settings))
        try:
            loaded: dict[str, QuerySet] = {}
            for query_set in query_sets:
                if (first := loaded.get(query_set.dataset.name)) is not None:
                    query_set.collection_id, query_set.facts = first.collection_id, {**first.facts}
                else:
                    ingest_memora(db.settings, engine, query_set, embedder)
                    documents = query_set.dataset.documents
                    with console.status(f"{query_set.name}: the peers' tables"):
                        vectors = embedder.embed(document_texts(documents))
                        query_set.facts |= load_peers(db.url, query_set.dataset.name, query_set.collection_id,
                                                      documents, vectors)  # fmt: skip
                    loaded[query_set.dataset.name] = query_set
                embed_queries(query_set, embedder)
                embedder.save()
                figures = run(db.url, engine, query_set, args.warmup, args.seed, args.explain)
                results[query_set.name] = {"corpus": query_set.facts, **summarise(query_set, figures)}
                report(query_set, results[query_set.name])
        finally:
            engine.dispose()
            embedder.save()
    print_facts("Machine and server", facts)
    console.print(f"wall time {time.perf_counter() - started:.0f} s")
    write_json(
        args.json,
        {
            "benchmark": "search_peers",
            "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "settings": {
                "k": K, "posting BM25 rows": SIDE, "RRF candidates a side": SIDE, "RRF k": 60,
                "quality pass": f"Memora: rank_documents from depth {DEFAULT_DEPTH} chunks to 100 documents; "
                                f"recipes: {QUALITY_K} rows (Supabase caps at 30, pgvector-python 20 a side)",
                "hnsw.ef_search": "Memora: its own (64, at least k); RRF(posting, HNSW): 100; recipes: 40",
                "psycopg": "one connection per method, autocommit, prepare_threshold 5 (psycopg's default)",
            },
            "machine": facts,
            "query_sets": results,
        },
    )  # fmt: skip


def report(query_set: QuerySet, result: dict[str, Any]) -> None:
    print_facts(f"{query_set.name}: corpus and queries", result["corpus"])
    rows = [[name, f"{row['ndcg@10']:.4f}", f"{row['ndcg@10 - memora hybrid']:+.4f}", f"{row['recall@100']:.4f}",
             row["p50_ms"], row["p95_ms"], row["p50 / BM25 p50"], row["p95 / BM25 p95"], row["p50 / RRF p50"],
             row["p95 / RRF p95"]] for name, row in result["methods"].items()]  # fmt: skip
    print_table(
        f"{query_set.name}: {len(query_set.queries)} queries, k = {K}, interleaved in a shuffled order",
        ["method", "nDCG@10", "vs hybrid", "recall@100", "p50 ms", "p95 ms", "p50 / BM25", "p95 / BM25",
         "p50 / RRF", "p95 / RRF"],
        rows,
    )  # fmt: skip
    same = result["queries where the posting BM25's top 10 chunks are search_text's"]
    console.print(f"posting BM25's top 10 chunks = search_text's on {same} of {len(query_set.queries)} queries")
    for goal, met in result["goals"].items():
        console.print(f"{goal}: {'met' if met else 'NOT met'}")
    margin = result["hybrid - RRF nDCG@10, per query"]
    console.print(f"hybrid - RRF nDCG@10 per query: {margin['gain']:+.4f}, 95% interval {margin['ci95']}, "
                  f"{margin['better']} queries better, {margin['worse']} worse")  # fmt: skip


if __name__ == "__main__":
    main()
