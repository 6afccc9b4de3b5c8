"""Plain functions that make rows for tests; each takes overrides for any column."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

from sqlalchemy.orm import Session

from app.db.models import Chunk, Collection, Dataset, Document, Embedding, EvalRun, Example

_seq = itertools.count(1)


def make_collection(db: Session, **overrides: Any) -> Collection:
    values: dict[str, Any] = {"name": f"collection-{next(_seq)}", "embedding_model": "test-model", "dimensions": 3}
    collection = Collection(**(values | overrides))
    db.add(collection)
    db.flush()
    db.refresh(collection)
    return collection


def make_document(db: Session, collection: Collection, **overrides: Any) -> Document:
    n = next(_seq)
    values: dict[str, Any] = {"external_id": f"doc-{n}", "title": f"Document {n}", "content": f"Content {n}."}
    document = Document(collection_id=collection.id, **(values | overrides))
    db.add(document)
    db.flush()
    db.refresh(document)
    return document


def make_chunk(db: Session, document: Document, **overrides: Any) -> Chunk:
    text = overrides.pop("text", document.content)
    values: dict[str, Any] = {
        "ordinal": 0,
        "char_start": 0,
        "char_end": len(text),
        "content_hash": hashlib.sha256(text.encode()).digest(),
        "title": document.title,
        "language": "english",
    }
    chunk = Chunk(collection_id=document.collection_id, document_id=document.id, text=text, **(values | overrides))
    db.add(chunk)
    db.flush()
    db.refresh(chunk)
    return chunk


def make_embedding(
    db: Session, chunk: Chunk, vector: list[float], model: str = "test-model", version: int = 1
) -> Embedding:
    embedding = Embedding(
        collection_id=chunk.collection_id, chunk_id=chunk.id, version=version, model=model, embedding=vector
    )
    db.add(embedding)
    db.flush()
    return embedding


def make_dataset(db: Session, **overrides: Any) -> Dataset:
    values: dict[str, Any] = {"name": f"dataset-{next(_seq)}", "task": "classification"}
    dataset = Dataset(**(values | overrides))
    db.add(dataset)
    db.flush()
    db.refresh(dataset)
    return dataset


def make_example(db: Session, dataset: Dataset, **overrides: Any) -> Example:
    n = next(_seq)
    values: dict[str, Any] = {
        "format": "classification",
        "input": {"text": f"example {n}"},
        "label": "ham",
    }
    example = Example(dataset_id=dataset.id, **(values | overrides))
    db.add(example)
    db.flush()
    db.refresh(example)
    return example


def eval_run_summary(ndcg: dict[str, float] | None = None, sweep: bool = True) -> dict[str, Any]:
    """A stored run's summary with every part a real one has: each mode's metrics, its recall curve (k = 1..100)
    and, with SWEEP, the latency sweep's points."""
    ndcg = ndcg or {"text": 0.8123, "vector": 0.6234, "hybrid": 0.8456}
    modes = {
        mode: {"ndcg@10": value, "recall@10": value * 0.9, "recall@100": min(value * 1.1, 1.0), "mrr@10": value,
               "p50_ms": 1.5 + i, "p95_ms": 3.25 + i, "queries": 5}
        for i, (mode, value) in enumerate(ndcg.items())
    }  # fmt: skip
    curves = {mode: [min(value * (k / 100) ** 0.3, 1.0) for k in range(1, 101)] for mode, value in ndcg.items()}
    points = [
        {"mode": "vector", "label": f"ef {ef}", "ef_search": ef, "candidates": None, "p50_ms": 1.0 + ef / 50,
         "ndcg@10": 0.6 + ef / 2000}
        for ef in (16, 40, 100, 200)
    ]  # fmt: skip
    return {"modes": modes, "recall_curve": curves, "sweep": points if sweep else []}


def make_eval_run(db: Session, collection: Collection, **overrides: Any) -> EvalRun:
    params = {
        "source": {"queries": "queries.jsonl", "qrels": "qrels/test.tsv"}, "queries": 5,
        "modes": ["text", "vector", "hybrid"], "k_depth": 200, "version": 1, "model": "test-model",
        "fusion": {"fusion": "convex", "rrf_k": 60, "text_weight": 1.0, "vector_weight": 1.0, "candidates": None,
                   "ef_search": None},
        "sweep": True, "tune": None,
    }  # fmt: skip
    values: dict[str, Any] = {"params": params, "summary": eval_run_summary()}
    run = EvalRun(collection_id=collection.id, **(values | overrides))
    db.add(run)
    db.flush()
    db.refresh(run)
    return run
