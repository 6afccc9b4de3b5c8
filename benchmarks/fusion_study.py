"""Fusion functions for hybrid search, compared offline on the candidates the SQL functions return.

Ingests a dataset as benchmarks/search_quality.py does, then dumps, for every judged query, the BM25 candidates
(memora.bm25_candidates) and the nearest-neighbour candidates (memora.vector_candidates), DEPTH of each, to
benchmarks/.cache/ (gitignored; later runs reuse the dump). Then fuses the two lists in Python with each function
below, ranks documents by their first chunk (as `memora eval` does) and prints nDCG@10 per function:

- Reciprocal Rank Fusion, w_t / (rrf_k + text rank) + w_v / (rrf_k + vector rank), over rrf_k and weight ratios;
- convex combinations (1 - alpha) * text + alpha * vector of normalised scores (Bruch et al. 2023, "An Analysis of
  Fusion Functions for Hybrid Retrieval"): min-max per list; theoretical min-max (BM25 / the list's best BM25,
  cosine similarity from its range [-1, 1]); z-scores per list;
- each at 40 (4 x k for k 10) and at DEPTH candidates per side.

A chunk missing from one list takes that list's lowest normalised score there (the most it can have, having not made
the list; for min-max that is 0, as in memora.search_hybrid_v1), or 0 (theoretical min-max, "absent = 0").

    .venv/bin/python benchmarks/fusion_study.py [--dataset nfcorpus|squad] [--corpus PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common import REPO_ROOT, print_table, progress, scratch_database, write_json
from search_quality import DEFAULT_CORPUS, ingest_dataset, load_nfcorpus, load_squad
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

Candidates = list[tuple[int, float]]  # (chunk id, score), best first
Fusion = Callable[[Candidates, Candidates], dict[int, float]]


def dump(dataset_name: str, corpus: Path, depth: int) -> dict[str, Any]:
    """Ingest into a scratch database and return every judged query's candidates of both kinds."""
    dataset = load_nfcorpus(corpus) if dataset_name == "nfcorpus" else load_squad(corpus)
    queries = service.judged_queries(dataset.queries, dataset.qrels)
    with scratch_database("memora_bench_fusion") as db:
        settings = Settings(database_url=db.url)
        engine = make_engine(db.settings, "bench")
        try:
            ingest_dataset(settings, engine, dataset)
            with Session(engine) as session:
                collection = collections.get(session, dataset.name)
                collection_id = collection.id
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
    return {"dataset": dataset_name, "depth": depth, "documents": documents, "queries": rows}


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


def evaluate(data: dict[str, Any], fuse: Fusion | str, depth: int) -> float:
    """Mean nDCG@10 of FUSE (or 'text', 'vector': one list alone) with DEPTH candidates per side."""
    documents = data["documents"]
    total = 0.0
    for query in data["queries"]:
        lexical = [(int(c), float(s)) for c, s in query["text"][:depth]]
        semantic = [(int(c), float(s)) for c, s in query["vector"][:depth]]
        if fuse == "text":
            chunks = [c for c, _ in lexical]
        elif fuse == "vector":
            chunks = [c for c, _ in semantic]
        else:
            assert not isinstance(fuse, str)
            scores = fuse(lexical, semantic)
            chunks = sorted(scores, key=lambda c: (-scores[c], c))
        ranking = list(dict.fromkeys(documents[str(c)] for c in chunks))
        total += ndcg_at(ranking, query["judgments"], 10)
    return total / len(data["queries"])


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
    if args.refresh or not cached.exists():
        if not corpus.exists():
            parser.error(f"{corpus}: not found (the data lives in ../shared, outside the repository)")
        data = dump(args.dataset, corpus, DEPTH)
        CACHE.mkdir(parents=True, exist_ok=True)
        with gzip.open(cached, "wt") as f:
            json.dump(data, f)
    else:
        with gzip.open(cached, "rt") as f:
            data = json.load(f)
    results = []
    with progress() as bar:
        rows = variants()
        task = bar.add_task("fusion variants", total=2 * len(rows) + 2)
        single = {mode: evaluate(data, mode, DEPTH) for mode in ("text", "vector")}
        bar.advance(task, 2)
        for family, label, params, fuse in rows:
            for depth in (40, DEPTH):
                results.append({"family": family, "label": label, **params, "depth": depth,
                                "ndcg@10": evaluate(data, fuse, depth)})  # fmt: skip
                bar.advance(task)
    best_single = max(single.values())
    print_table(
        f"{args.dataset}: nDCG@10 (text {single['text']:.4f}, vector {single['vector']:.4f})",
        ["fusion", "depth", "nDCG@10", "- best single"],
        [[r["label"], r["depth"], f"{r['ndcg@10']:.4f}", f"{r['ndcg@10'] - best_single:+.4f}"] for r in results],
    )
    write_json(args.json, {"benchmark": "fusion_study", "dataset": args.dataset, "single": single, "fusions": results})


if __name__ == "__main__":
    main()
