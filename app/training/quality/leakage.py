"""Leakage: pairs of a train example and a validation or test example that are exact duplicates (same text_hash)
or near duplicates (through the dataset's HNSW index), so an evaluation does not score what training saw."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import EmbeddingProviderError
from app.training.datasets import service as datasets
from app.training.quality import repository
from app.training.quality.index import (
    ProgressFn,
    chosen,
    embedder_for,
    ensure_embeddings,
    no_progress,
    refused,
)
from app.training.quality.neighbours import neighbours
from app.training.quality.schemas import EmbeddingChoice, LeakageReport, LeakPair


def leakage(
    db: Session,
    name: str,
    settings: Settings,
    *,
    threshold: float,
    k: int,
    choice: EmbeddingChoice,
    limit: int = 1000,
    progress: ProgressFn = no_progress,
) -> LeakageReport:
    """Pairs of a train example and a validation or test example that are exact or near duplicates."""
    # Kept (FOR KEY SHARE): the report reads the dataset's row again at each step, and a delete that came in
    # between made the next read find nothing (a 500). A delete now waits for the report, or the report for it (404).
    dataset = datasets.get(db, name, keep=True)
    embedder = embedder_for(choice, settings)
    conn = db.connection()
    params = {"d": dataset.id}
    pairs = [
        LeakPair(train_id=r.train_id, other_id=r.other_id, other_split=r.other_split, similarity=1, exact=True)
        for r in repository.EXACT_CROSSINGS.run(conn, params)
    ]
    try:
        embedded = ensure_embeddings(db, dataset, embedder, batch_size=settings.embed_batch_size, progress=progress)
    except EmbeddingProviderError as exc:
        raise refused(exc, choice) from None
    for r in neighbours(conn, dataset, embedder.dimensions, "leakage", k, threshold, progress=progress):
        pairs.append(LeakPair(train_id=r.b, other_id=r.a, other_split=r.a_split, similarity=r.similarity, exact=False))
    pairs.sort(key=lambda p: (-p.similarity, p.other_id, p.train_id))
    checked = int(repository.EVALUATION_EXAMPLES.run(conn, params).scalar_one())
    counts = {
        "pairs": len(pairs),
        "exact": sum(p.exact for p in pairs),
        "near": sum(not p.exact for p in pairs),
        "train_validation": sum(p.other_split == "validation" for p in pairs),
        "train_test": sum(p.other_split == "test" for p in pairs),
        "embedded": embedded,
    }
    return LeakageReport(
        threshold=threshold, k=k, checked=checked, pairs=pairs[:limit], counts=counts, embedding=chosen(embedder)
    )
