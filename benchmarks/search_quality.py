"""Retrieval quality of Memora's search on judged queries, against baselines computed in the same run.

Ingests a dataset into a scratch database with the local model (upsert, then the worker until the queue is empty),
then evaluates text, vector and hybrid search through the code of `memora eval` (app/eval/), ts_rank_cd (the usual
PostgreSQL recipe, AND and OR queries) and BM25 computed in Python over the same stored lexemes
(benchmarks/search_baselines.py), and sweeps hybrid's fusion parameters.

    .venv/bin/python benchmarks/search_quality.py [--dataset nfcorpus|squad] [--corpus PATH] [--json PATH]

nfcorpus: a BEIR directory (corpus.jsonl, queries.jsonl, qrels/test.tsv), by default ../shared/data/nfcorpus.
squad: SQuAD 2.0 JSON, by default ../shared/data/squad/dev-v2.0.json: each paragraph is a document (titled with its
article), each answerable question a query whose one relevant document is its paragraph.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from search_baselines import TS_RANK_CD, bm25_rankings, evaluate_rankings, load_index, query_terms, ts_rank_cd
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.cli.documents import wait_for_worker
from app.collections import service as collections
from app.collections.schemas import CollectionCreate
from app.config import Settings
from app.db.engine import make_engine
from app.embeddings import registry
from app.eval import service
from app.eval.metrics import percentile
from app.eval.repository import MODES, FusionParams
from app.eval.service import ModeResult
from app.ingest import service as ingest
from app.ingest.files import UPSERT_BATCH
from app.ingest.parsing import parse_file
from app.ingest.service import DocumentInput

DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_CORPUS = {"nfcorpus": DATA / "nfcorpus", "squad": DATA / "squad" / "dev-v2.0.json"}
BM25_TOKENS = "BM25 in Python, length = tokens"
BM25_DISTINCT = "BM25 in Python, length = distinct lexemes"
SWEEP_K = 30  # chunks asked for in the sweep: enough for 10 documents; nDCG@10 needs no more


@dataclass
class Dataset:
    name: str
    documents: list[DocumentInput]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_nfcorpus(directory: Path) -> Dataset:
    corpus = directory / "corpus.jsonl"
    parsed = parse_file(corpus.name, corpus.read_bytes())
    documents = [
        DocumentInput(d.content, d.external_id, d.title, d.content_type, d.metadata, corpus.name) for d in parsed
    ]
    queries = service.load_queries(directory / "queries.jsonl")
    return Dataset("nfcorpus", documents, queries, service.load_qrels(directory / "qrels" / "test.tsv"))


def load_squad(path: Path) -> Dataset:
    documents, queries, qrels = [], {}, {}
    for a, article in enumerate(json.loads(path.read_text())["data"]):
        for p, paragraph in enumerate(article["paragraphs"]):
            key = f"{a}-{p}"
            title = article["title"].replace("_", " ")
            documents.append(DocumentInput(paragraph["context"], key, title, source=path.name))
            for question in paragraph["qas"]:
                if not question.get("is_impossible"):
                    queries[question["id"]] = question["question"]
                    qrels[question["id"]] = {key: 1}
    return Dataset("squad", documents, queries, qrels)


def collection_settings(collection: Any) -> dict[str, Any]:
    """What the collection's figures depend on: model, metric, chunking, language, HNSW build, BM25 constants."""
    names = ("embedding_provider", "embedding_model", "dimensions", "metric", "storage", "chunking", "language",
             "hnsw_m", "hnsw_ef_construction", "bm25_k1", "bm25_b")  # fmt: skip
    return {name: getattr(collection, name) if name != "language" else str(collection.language) for name in names}


def ingest_dataset(settings: Settings, engine: Engine, dataset: Dataset) -> dict[str, Any]:
    """Create the collection (local model, defaults), upsert the documents as `memora ingest` does, run the worker
    until the queue is empty; the seconds each took."""
    with Session(engine) as db, db.begin():
        collections.create(db, CollectionCreate(name=dataset.name))
    began = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("upsert documents", total=len(dataset.documents))
        for start in range(0, len(dataset.documents), UPSERT_BATCH):
            batch = dataset.documents[start : start + UPSERT_BATCH]
            with Session(engine) as db, db.begin():
                ingest.upsert(db, collections.get(db, dataset.name), batch)
            bar.advance(task, len(batch))
    upserted = time.perf_counter()
    counts = wait_for_worker(settings, engine, dataset.name)
    assert counts.get("ready", 0) == len(dataset.documents), counts
    return {"upsert_seconds": round(upserted - began, 1), "worker_seconds": round(time.perf_counter() - upserted, 1)}


@dataclass(frozen=True)
class SweepConfig:
    label: str
    mode: str
    k: int  # chunks asked for
    params: FusionParams
    documents: int  # 0: the documents of the K chunks, as a caller asking for K gets them; else deepen to this many


def sweep_configs(depth: int) -> list[SweepConfig]:
    """Fusion variations, one knob at a time from the defaults (convex, weights 1 : 1, candidates 4 x k); RRF
    (rrf_k 60 unless said); with text and vector at k 10 for reference."""
    at_10 = [SweepConfig(f"{mode}, k 10", mode, 10, FusionParams(), 0) for mode in ("text", "vector")]
    at_10 += [
        SweepConfig(f"hybrid, k 10, candidates {c or '40 (default)'}", "hybrid", 10, FusionParams(candidates=c), 0)
        for c in (None, 200)
    ]
    at_10 += [SweepConfig("hybrid, k 10, rrf", "hybrid", 10, FusionParams(fusion="rrf"), 0)]
    knobs = [(f"weights text {t:g} : vector {v:g}", FusionParams(text_weight=t, vector_weight=v))
             for t, v in ((1, 0.5), (1, 0.75), (1, 1.5), (1, 2))]  # fmt: skip
    knobs += [(f"candidates {c}", FusionParams(candidates=c)) for c in (60, 300)]
    knobs += [(f"rrf, rrf_k {r}", FusionParams(fusion="rrf", rrf_k=r)) for r in (1, 10, 60)]
    knobs += [("rrf, weights text 1 : vector 0.5", FusionParams(fusion="rrf", vector_weight=0.5))]
    return [
        *at_10,
        *(SweepConfig(f"hybrid, k {SWEEP_K}, {label}", "hybrid", SWEEP_K, params, 10) for label, params in knobs),
        SweepConfig(f"hybrid, k {depth} (eval depth)", "hybrid", depth, FusionParams(), 100),
        SweepConfig(f"hybrid, k {depth} (eval depth), rrf", "hybrid", depth, FusionParams(fusion="rrf"), 100),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DEFAULT_CORPUS), default="nfcorpus")
    parser.add_argument("--corpus", type=Path, help="nfcorpus: a BEIR directory; squad: the SQuAD 2.0 JSON file")
    parser.add_argument("--limit-queries", type=int, help="first N judged queries only (default: all)")
    parser.add_argument("--depth", type=int, default=service.DEFAULT_DEPTH, help="chunks asked for per query")
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweep of hybrid's parameters")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    corpus = args.corpus or DEFAULT_CORPUS[args.dataset]
    if not corpus.exists():
        parser.error(f"{corpus}: not found (the data lives in ../shared, outside the repository)")

    started = time.perf_counter()
    with console.status(f"reading {corpus}"):
        dataset = load_nfcorpus(corpus) if args.dataset == "nfcorpus" else load_squad(corpus)
    queries = service.judged_queries(dataset.queries, dataset.qrels)[: args.limit_queries]
    with scratch_database("memora_bench_quality") as db:
        settings = Settings(database_url=db.url)
        facts = {**machine(), **code_version(), **server_facts(db.url), "server": db.server}
        engine = make_engine(db.settings, "bench")
        try:
            ingest_figures = ingest_dataset(settings, engine, dataset)
            with Session(engine) as session:
                collection = collections.get(session, dataset.name)
                collection_id, language = collection.id, str(collection.language)
                stored_settings = collection_settings(collection)
                model = (collection.embedding_provider, collection.embedding_model, collection.dimensions)
            embedder = registry.get_embedder(*model, settings)
            embeddings, embed_ms = service.embed_queries(embedder, [q.text for q in queries], settings.embed_batch_size)
            alone_ms = []
            for query in queries[:100]:
                began = time.perf_counter()
                embedder.embed([query.text])
                alone_ms.append((time.perf_counter() - began) * 1000)
            results: dict[str, ModeResult] = {}
            sweep: list[dict[str, Any]] = []
            with engine.connect() as conn, progress() as bar:
                for mode in MODES:
                    task = bar.add_task(f"{mode} search", total=len(queries))
                    results[mode] = service.evaluate_mode(
                        conn, mode, dataset.name, queries, embeddings, embed_ms, depth=args.depth,
                        advance=lambda task=task: bar.advance(task),
                    )  # fmt: skip
                for name in TS_RANK_CD:
                    with console.status(name):
                        results[name] = ts_rank_cd(conn, name, collection_id, language, queries, 2 * args.depth)
                with console.status("BM25 in Python"):
                    index = load_index(conn, collection_id)
                    terms = query_terms(conn, language, queries)
                    for name, real in ((BM25_TOKENS, True), (BM25_DISTINCT, False)):
                        results[name] = evaluate_rankings(name, queries, bm25_rankings(index, terms, real_length=real))
                chunks = len(index.external_ids)
                if not args.no_sweep:
                    configs = sweep_configs(args.depth)
                    task = bar.add_task("fusion sweep", total=len(configs) * len(queries))
                    for config in configs:
                        result = service.evaluate_mode(
                            conn, config.mode, dataset.name, queries, embeddings, embed_ms, depth=config.k,
                            params=config.params, documents=config.documents,
                            advance=lambda task=task: bar.advance(task),
                        )  # fmt: skip
                        params = vars(config.params) if config.mode == "hybrid" else {}
                        sweep.append({"config": config.label, "mode": config.mode, "k": config.k, **params,
                                      **result.summary()})  # fmt: skip
        finally:
            engine.dispose()

    summary = {name: result.summary() for name, result in results.items()}
    for name in (BM25_TOKENS, BM25_DISTINCT):
        summary[name]["p50_ms"] = summary[name]["p95_ms"] = None  # type: ignore[assignment]
    corpus_facts = {
        "dataset": dataset.name,
        "documents": len(dataset.documents),
        "chunks": chunks,
        "judged queries": len(queries),
        "model": "/".join(map(str, model)),
        **ingest_figures,
        f"query embedding, amortised in batches of {settings.embed_batch_size}: mean ms": round(
            sum(embed_ms) / max(len(embed_ms), 1), 2
        ),
        "query embedding alone: p50 ms": round(percentile(alone_ms, 50), 2),
    }
    print_facts("Machine and server", facts)
    print_facts("Dataset and ingestion", corpus_facts)
    columns = ["method", "nDCG@10", "recall@10", "recall@100", "MRR@10", "p50 ms", "p95 ms"]
    keys = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "p50_ms", "p95_ms"]
    print_table(
        f"Search quality on {dataset.name} ({len(queries)} queries; metrics x 1, latency in ms)",
        columns,
        [
            [name, *(_fmt(figures[key]) if "ms" not in key else figures[key] for key in keys)]
            for name, figures in summary.items()
        ],
    )
    if sweep:
        print_table(
            f"Fusion sweep ({len(queries)} queries; one knob at a time from convex, weights 1 : 1, 4 x k candidates)",
            ["config", "candidates", "nDCG@10", "recall@10", "MRR@10", "p50 ms"],
            [
                [row["config"], (row["candidates"] or 4 * row["k"]) if row["mode"] == "hybrid" else None,
                 _fmt(row["ndcg@10"]), _fmt(row["recall@10"]), _fmt(row["mrr@10"]), row["p50_ms"]]
                for row in sweep
            ],
        )  # fmt: skip
    checks = _checks(summary)
    for line in checks["lines"]:
        console.print(line)
    console.print(f"wall time {time.perf_counter() - started:.0f} s")
    write_json(
        args.json,
        {
            "benchmark": "search_quality",
            "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
            | {"corpus": str(corpus)},
            "machine": facts,
            "dataset": corpus_facts,
            "settings": {
                "collection": stored_settings,
                "embed_batch_size": settings.embed_batch_size,
                "worker_batch_size": settings.worker_batch_size,
                "upsert_batch": UPSERT_BATCH,
                "documents_per_query": service.DOCUMENTS,
                "sweep_k": SWEEP_K,
                "ts_rank_cd_depth": 2 * args.depth,
            },
            "methods": summary,
            "fusion_sweep": sweep,
            "checks": checks["values"],
        },
    )


def _fmt(metric: float) -> str:
    """Metrics to 4 places: print_table's 2 are too few to tell methods apart."""
    return f"{metric:.4f}"


def _checks(summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets: text within 0.01 of BM25, above ts_rank_cd; hybrid above text and vector."""
    ndcg = {name: figures["ndcg@10"] for name, figures in summary.items()}
    values = {
        "text - BM25 (tokens)": ndcg["text"] - ndcg[BM25_TOKENS],
        "text - BM25 (distinct lexemes)": ndcg["text"] - ndcg[BM25_DISTINCT],
        "text - best ts_rank_cd": ndcg["text"] - max(ndcg[name] for name in TS_RANK_CD),
        "hybrid - text": ndcg["hybrid"] - ndcg["text"],
        "hybrid - vector": ndcg["hybrid"] - ndcg["vector"],
    }
    verdicts = {
        "text - BM25 (tokens)": abs(values["text - BM25 (tokens)"]) <= 0.01,
        "text - BM25 (distinct lexemes)": abs(values["text - BM25 (distinct lexemes)"]) <= 0.01,
        "text - best ts_rank_cd": values["text - best ts_rank_cd"] > 0,
        "hybrid - text": values["hybrid - text"] > 0,
        "hybrid - vector": values["hybrid - vector"] > 0,
    }
    lines = [
        f"nDCG@10 {name}: {value:+.4f} ({'met' if verdicts[name] else 'NOT met'})" for name, value in values.items()
    ]
    return {"values": {name: {"delta": values[name], "met": verdicts[name]} for name in values}, "lines": lines}


if __name__ == "__main__":
    main()
