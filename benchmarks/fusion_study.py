"""Fusion functions for hybrid search, compared offline on the candidates the SQL functions return.

Ingests a dataset as benchmarks/search_quality.py does, then dumps, for every judged query, the BM25 candidates
(memora.bm25_candidates) and the nearest-neighbour candidates (memora.vector_candidates), DEPTH of each, to
benchmarks/.cache/ (gitignored; later runs reuse the dump). Then fuses the two lists in Python with each function
below, ranks documents by their first chunk (as `memora eval` does) and prints nDCG@10 per function:

- Reciprocal Rank Fusion, w_t / (rrf_k + text rank) + w_v / (rrf_k + vector rank), over rrf_k and weight ratios;
- convex combinations (1 - alpha) * text + alpha * vector of normalised scores (Bruch et al. 2023, "An Analysis of
  Fusion Functions for Hybrid Retrieval"): min-max per list; theoretical min-max (BM25 / the list's best BM25,
  cosine similarity from its range [-1, 1]); z-scores per list;
- each at 40 (4 x k for k 10) and at DEPTH candidates per side;
- each against the better single mode per query: the mean gain with a 95% bootstrap interval (queries resampled
  BOOTSTRAP times, a fixed seed) and how many queries gained and lost.

The JSON records the machine and the commit of this run and, under "dump", those of the run that ingested and dumped
the candidates (a dump from before they were recorded has none: pass --refresh to make a traceable one).

A chunk missing from one list takes that list's lowest normalised score there (the most it can have, having not made
the list; for min-max that is 0, as in memora.search_hybrid_v1), or 0 (theoretical min-max, "absent = 0").

    .venv/bin/python benchmarks/fusion_study.py [--dataset nfcorpus|squad] [--corpus PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    REPO_ROOT,
    code_version,
    console,
    machine,
    print_table,
    progress,
    scratch_database,
    server_facts,
    write_json,
)
from search_quality import DEFAULT_CORPUS, collection_settings, ingest_dataset, load_nfcorpus, load_squad
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.collections import service as collections
from app.config import Settings
from app.db.engine import make_engine
from app.embeddings import registry
from app.eval import service
from app.eval.metrics import ndcg_at

CACHE = REPO_ROOT / "benchmarks" / ".cache"
DEPTH = 200
ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
RRF_KS = (1, 5, 10, 20, 30, 60, 100)
RATIOS = (0.5, 0.75, 1.0, 1.5, 2.0)  # vector weight : text weight 1
BOOTSTRAP = 10_000  # resamples of the queries for the interval of each fusion's gain
SEED = 15

Candidates = list[tuple[int, float]]  # (chunk id, score), best first
Fusion = Callable[[Candidates, Candidates], dict[int, float]]


def dump(dataset_name: str, corpus: Path, depth: int) -> dict[str, Any]:
    """Ingest into a scratch database and return every judged query's candidates of both kinds."""
    dataset = load_nfcorpus(corpus) if dataset_name == "nfcorpus" else load_squad(corpus)
    queries = service.judged_queries(dataset.queries, dataset.qrels)
    with scratch_database("memora_bench_fusion") as db:
        settings = Settings(database_url=db.url)
        provenance: dict[str, Any] = {**machine(), **code_version(), **server_facts(db.url), "server": db.server}
        engine = make_engine(db.settings, "bench")
        try:
            provenance["ingest"] = ingest_dataset(settings, engine, dataset)
            with Session(engine) as session:
                collection = collections.get(session, dataset.name)
                collection_id = collection.id
                provenance["collection"] = collection_settings(collection)
                model = (collection.embedding_provider, collection.embedding_model, collection.dimensions)
            embedder = registry.get_embedder(*model, settings)
            embeddings, _ = service.embed_queries(embedder, [q.text for q in queries], settings.embed_batch_size)
            lexical = text("SELECT chunk_id, score FROM memora.bm25_candidates(:c, :q, :n) ORDER BY rank")
            semantic = text(
                "SELECT chunk_id, memora.vector_similarity('cosine', distance) "
                "FROM memora.vector_candidates(:c, :e, :n) ORDER BY rank"
            )
            rows = []
            with engine.connect() as conn, progress() as bar:
                owners = conn.execute(
                    text(
                        "SELECT c.id, d.external_id FROM memora.chunk c JOIN memora.document d "
                        "ON d.collection_id = c.collection_id AND d.id = c.document_id WHERE c.collection_id = :c"
                    ),
                    {"c": collection_id},
                )
                documents = {str(chunk_id): external_id for chunk_id, external_id in owners}
                task = bar.add_task("candidates", total=len(queries))
                for query, embedding in zip(queries, embeddings, strict=True):
                    params = {"c": collection_id, "q": query.text, "e": embedding, "n": depth}
                    rows.append(
                        {
                            "id": query.id,
                            "judgments": dict(query.judgments),
                            "text": [list(r) for r in conn.execute(lexical, params)],
                            "vector": [list(r) for r in conn.execute(semantic, params)],
                        }
                    )
                    bar.advance(task)
        finally:
            engine.dispose()
    provenance["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    provenance["dumped_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"dataset": dataset_name, "depth": depth, "provenance": provenance, "documents": documents, "queries": rows}


def rrf(rrf_k: float, text_weight: float = 1.0, vector_weight: float = 1.0) -> Fusion:
    def fuse(lexical: Candidates, semantic: Candidates) -> dict[int, float]:
        scores: dict[int, float] = {}
        for weight, ranking in ((text_weight, lexical), (vector_weight, semantic)):
            for rank, (chunk, _) in enumerate(ranking, start=1):
                scores[chunk] = scores.get(chunk, 0.0) + weight / (rrf_k + rank)
        return scores

    return fuse


Normaliser = Callable[[list[float], str], list[float]]


def min_max(scores: list[float], _kind: str) -> list[float]:
    low, high = min(scores), max(scores)
    return [(s - low) / (high - low) if high > low else 1.0 for s in scores]


def theoretical(scores: list[float], kind: str) -> list[float]:
    """BM25 / the list's best (BM25's least is 0, its most unbounded); cosine similarity (s + 1) / 2."""
    if kind == "text":
        high = max(scores)
        return [s / high if high > 0 else 0.0 for s in scores]
    return [(s + 1) / 2 for s in scores]


def z_score(scores: list[float], _kind: str) -> list[float]:
    mean = statistics.fmean(scores)
    spread = statistics.pstdev(scores) if len(scores) > 1 else 0.0
    return [(s - mean) / spread if spread > 0 else 0.0 for s in scores]


def convex(normalise: Normaliser, alpha: float, missing: str = "lowest") -> Fusion:
    """(1 - alpha) * text + alpha * vector; a chunk absent from a list takes the list's lowest normalised score
    (MISSING 'lowest') or 0 ('zero')."""

    def fuse(lexical: Candidates, semantic: Candidates) -> dict[int, float]:
        parts = []
        for kind, ranking in (("text", lexical), ("vector", semantic)):
            if not ranking:
                parts.append(({}, 0.0))
                continue
            normalised = dict(zip((c for c, _ in ranking), normalise([s for _, s in ranking], kind), strict=True))
            floor = (min(normalised.values()) if missing == "lowest" else 0.0) if normalised else 0.0
            parts.append((normalised, floor))
        (t, t_floor), (v, v_floor) = parts
        if not t:
            return {c: s for c, s in v.items()}
        if not v:
            return {c: s for c, s in t.items()}
        return {c: (1 - alpha) * t.get(c, t_floor) + alpha * v.get(c, v_floor) for c in dict.fromkeys([*t, *v])}

    return fuse


def evaluate(data: dict[str, Any], fuse: Fusion | str, depth: int) -> list[float]:
    """nDCG@10 of every query with FUSE (or 'text', 'vector': one list alone) and DEPTH candidates per side."""
    documents = data["documents"]
    scores = []
    for query in data["queries"]:
        lexical = [(int(c), float(s)) for c, s in query["text"][:depth]]
        semantic = [(int(c), float(s)) for c, s in query["vector"][:depth]]
        if fuse == "text":
            chunks = [c for c, _ in lexical]
        elif fuse == "vector":
            chunks = [c for c, _ in semantic]
        else:
            assert not isinstance(fuse, str)
            fused = fuse(lexical, semantic)
            chunks = sorted(fused, key=lambda c: (-fused[c], c))
        ranking = list(dict.fromkeys(documents[str(c)] for c in chunks))
        scores.append(ndcg_at(ranking, query["judgments"], 10))
    return scores


class Paired:
    """Per-query gains over a baseline: the mean, a 95% bootstrap interval, queries better and worse."""

    def __init__(self, baseline: list[float], resamples: int, seed: int) -> None:
        self.baseline = np.array(baseline)
        n = len(baseline)
        picks = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
        # How often each query is drawn in each resample: the resampled means are one matrix product.
        self.weights = np.zeros((resamples, n), dtype=np.float32)
        np.add.at(self.weights, (np.arange(resamples)[:, None], picks), 1.0)
        self.weights /= n

    def compare(self, scores: list[float]) -> dict[str, Any]:
        gains = np.array(scores) - self.baseline
        means = self.weights @ gains.astype(np.float32)
        low, high = np.percentile(means, [2.5, 97.5])
        return {"gain": float(gains.mean()), "ci95": [round(float(low), 4), round(float(high), 4)],
                "better": int((gains > 1e-12).sum()), "worse": int((gains < -1e-12).sum())}  # fmt: skip


def vector_similarity(data: dict[str, Any], rank: int) -> dict[str, float]:
    """How the model's similarities spread per query: the best one's range and median, and the median at RANK
    (what min-max and the theoretical range [-1, 1] make of them)."""
    best = [float(q["vector"][0][1]) for q in data["queries"] if q["vector"]]
    at_rank = [float(q["vector"][rank - 1][1]) for q in data["queries"] if len(q["vector"]) >= rank]
    return {"best_min": round(min(best), 3), "best_median": round(statistics.median(best), 3),
            "best_max": round(max(best), 3), f"at_{rank}_median": round(statistics.median(at_rank), 3)}  # fmt: skip


def variants() -> list[tuple[str, str, dict[str, Any], Fusion]]:
    """(family, label, parameters, fusion) for every variant studied."""
    rows: list[tuple[str, str, dict[str, Any], Fusion]] = []
    for rrf_k in RRF_KS:
        for ratio in RATIOS:
            rows.append(
                ("rrf", f"RRF rrf_k {rrf_k}, w_v {ratio:g}", {"rrf_k": rrf_k, "w_v": ratio}, rrf(rrf_k, 1, ratio))
            )
    normalisers: Sequence[tuple[str, Normaliser]] = (("minmax", min_max), ("tmm", theoretical), ("z", z_score))
    for name, normalise in normalisers:
        for alpha in ALPHAS:
            rows.append((f"convex-{name}", f"convex {name} alpha {alpha:g}", {"alpha": alpha},
                         convex(normalise, alpha)))  # fmt: skip
            if name == "tmm":
                rows.append((f"convex-{name}-zero", f"convex {name} (absent = 0) alpha {alpha:g}", {"alpha": alpha},
                             convex(normalise, alpha, "zero")))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DEFAULT_CORPUS), default="nfcorpus")
    parser.add_argument("--corpus", type=Path, help="nfcorpus: a BEIR directory; squad: the SQuAD 2.0 JSON file")
    parser.add_argument("--refresh", action="store_true", help="ingest again even if the dump is cached")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    corpus = args.corpus or DEFAULT_CORPUS[args.dataset]
    cached = CACHE / f"fusion-{args.dataset}-{DEPTH}.json.gz"
    started = time.perf_counter()
    if args.refresh or not cached.exists():
        if not corpus.exists():
            parser.error(f"{corpus}: not found (the data lives in ../shared, outside the repository)")
        data = dump(args.dataset, corpus, DEPTH)
        CACHE.mkdir(parents=True, exist_ok=True)
        with gzip.open(cached, "wt") as f:
            json.dump(data, f)
        from_cache = False
    else:
        with gzip.open(cached, "rt") as f:
            data = json.load(f)
        from_cache = True
    provenance = data.get("provenance")
    if provenance is None or not provenance.get("tree_clean"):
        console.print(f"[yellow]{cached.name} does not record a clean commit: --refresh for traceable figures")
    results = []
    with progress() as bar:
        rows = variants()
        task = bar.add_task("fusion variants", total=2 * len(rows) + 2)
        per_query = {mode: evaluate(data, mode, DEPTH) for mode in ("text", "vector")}
        single = {mode: statistics.fmean(scores) for mode, scores in per_query.items()}
        baseline = max(single, key=lambda mode: single[mode])
        paired = Paired(per_query[baseline], BOOTSTRAP, SEED)
        bar.advance(task, 2)
        for family, label, params, fuse in rows:
            for depth in (40, DEPTH):
                scores = evaluate(data, fuse, depth)
                gain = paired.compare(scores)
                results.append({"family": family, "label": label, **params, "depth": depth,
                                "ndcg@10": statistics.fmean(scores), f"vs {baseline}": gain})  # fmt: skip
                bar.advance(task)
    similarity = vector_similarity(data, 40)
    console.print(f"vector similarity per query: {similarity}")
    print_table(
        f"{args.dataset}: nDCG@10 (text {single['text']:.4f}, vector {single['vector']:.4f}); gain over {baseline}",
        ["fusion", "depth", "nDCG@10", "gain", "95% interval", "better", "worse"],
        [[r["label"], r["depth"], f"{r['ndcg@10']:.4f}", f"{r[f'vs {baseline}']['gain']:+.4f}",
          "{:+.4f} to {:+.4f}".format(*r[f"vs {baseline}"]["ci95"]), r[f"vs {baseline}"]["better"],
          r[f"vs {baseline}"]["worse"]] for r in results],
    )  # fmt: skip
    console.print(f"wall time {time.perf_counter() - started:.0f} s")
    write_json(
        args.json,
        {
            "benchmark": "fusion_study",
            "dataset": args.dataset,
            "machine": {**machine(), **code_version()},
            "parameters": {
                "corpus": str(corpus),
                "cache": cached.name,
                "from_cache": from_cache,
                "depth": DEPTH,
                "shallow_depth": 40,
                "alphas": ALPHAS,
                "rrf_ks": RRF_KS,
                "vector_weights": RATIOS,
                "bootstrap_resamples": BOOTSTRAP,
                "seed": SEED,
                "queries": len(data["queries"]),
                "baseline": baseline,
            },
            "dump": provenance,
            "single": single,
            "vector_similarity": similarity,
            "fusions": results,
        },
    )


if __name__ == "__main__":
    main()
