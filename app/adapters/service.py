"""Train a query adapter for a collection and keep it as an embedding version.

One run: the judged queries are embedded with the base version's model and made into training data (app/adapters/
data.py); an adapter is trained and evaluated on each of the two held-out splits (app/adapters/splits.py), then
trained once more on every query, and that one becomes a version: the base's settings (its vectors are copied, not
embedded again) and the adapter's rows. The report says how each split went; the version is not made active, which
stays the user's choice.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from app.adapters import data as training_data
from app.adapters import evaluate, splits
from app.adapters.train import Options, Trained, train
from app.collections import service as collections
from app.config import Settings
from app.db.models import Collection, EmbeddingAdapter, EmbeddingVersion
from app.embeddings.registry import get_embedder
from app.errors import InvalidInputError
from app.eval.service import JudgedQuery, embed_queries

MIN_HELD_OUT = 10  # queries in each held-out set

Step = Callable[[str, int | None], Callable[[], None]]  # as app/eval/runner.py: start a step, get its advance


def base_version(db: Session, collection: Collection, number: int | None) -> EmbeddingVersion:
    """The version an adapter is trained on: NUMBER, or the active one; a 422 naming base if it cannot be one."""
    number = number or collection.active_version
    row = db.get(EmbeddingVersion, (collection.id, number))
    if row is None:
        raise InvalidInputError.for_field("base", f"collection {collection.name!r} has no embedding version {number}")
    if row.adapter is not None:
        base = row.adapter.get("base")
        raise InvalidInputError.for_field("base", f"version {number} is an adapter; train on its base ({base}) instead")
    if row.metric == "l2":
        raise InvalidInputError.for_field(
            "base", f"version {number} ranks by l2 distance, which a query adapter's map changes; use cosine or "
            "inner_product"
        )  # fmt: skip
    return row


def check_splits(queries: Sequence[JudgedQuery], seed: int) -> tuple[splits.Split, splits.Split]:
    """Both splits, or a 422 naming pairs when either leaves too few queries to train on or to judge by."""
    training_data.check(queries)
    made = splits.by_query(queries, seed), splits.by_document(queries, seed)
    for split in made:
        if len(split.held_out) < MIN_HELD_OUT or not split.train:
            raise InvalidInputError.for_field(
                "pairs",
                f"the {split.name} split holds out {len(split.held_out)} of {len(queries)} judged queries and trains "
                f"on {len(split.train)}; an honest evaluation needs at least {MIN_HELD_OUT} held out and some to "
                "train on: give more judged queries",
            )
    return made


@dataclass
class Prepared:
    """What training reads, made once: the base version, the queries' vectors, the training data."""

    collection: str
    number: int  # the base version
    model: str
    queries: Sequence[JudgedQuery]
    vectors: np.ndarray  # the queries', by the base version's model
    judged: training_data.Judged
    splits: tuple[splits.Split, splits.Split]  # by query, by document


def prepare(
    engine: Engine,
    settings: Settings,
    collection_name: str,
    queries: Sequence[JudgedQuery],
    *,
    base: int | None = None,
    seed: int = 0,
    step: Step | None = None,
) -> Prepared:
    """Check QUERIES (422s naming pairs or base), embed them with the base version's model, read their vectors and
    mine their hard negatives."""
    step = step or (lambda description, total: lambda: None)
    training_data.check(queries)
    with Session(engine) as db:
        collection = collections.get(db, collection_name)
        version = base_version(db, collection, base)
        training_data.check_known(db.connection(), collection.id, queries)
        made = check_splits(queries, seed)
        collection_id, number = collection.id, version.number
        model = f"{version.embedding_provider}/{version.embedding_model}"
        embedder = get_embedder(version.embedding_provider, version.embedding_model, version.dimensions, settings)
    step(f"embedding {len(queries)} queries ({embedder.model})", None)
    vectors = np.asarray(embed_queries(embedder, [q.text for q in queries], settings.embed_batch_size)[0],
                         dtype=np.float32)  # fmt: skip
    with engine.connect() as conn:
        judged = training_data.judged(conn, collection_id, collection_name, number, queries, vectors,
                                      step("mining hard negatives", len(queries)))  # fmt: skip
    return Prepared(collection_name, number, model, queries, vectors, judged, made)


def train_adapter(
    engine: Engine,
    settings: Settings,
    collection_name: str,
    queries: Sequence[JudgedQuery],
    *,
    base: int | None = None,
    options: Options | None = None,
    step: Step | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The adapter trained on every query of QUERIES, and the report of the two held-out evaluations."""
    options = options or Options()
    prepared = prepare(engine, settings, collection_name, queries, base=base, seed=options.seed, step=step)
    return train_prepared(engine, prepared, options, step)


def train_prepared(
    engine: Engine, prepared: Prepared, options: Options, step: Step | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """train_adapter's work once the data is PREPARED."""
    step = step or (lambda description, total: lambda: None)
    queries, vectors, judged = prepared.queries, prepared.vectors, prepared.judged
    report: dict[str, Any] = {
        "collection": prepared.collection,
        "base": prepared.number,
        "model": prepared.model,
        "queries": len(queries),
        "pairs": int(sum(len(p) for p in judged.data.positives)),
        "vectors": len(judged.data.vectors),
        "options": asdict(options),
        "splits": {},
    }
    tracemalloc.start()
    try:
        with engine.connect() as conn:
            for split in prepared.splits:
                trained = _fit(judged, queries, split.train, split.name, split.held_out_documents, options,
                               step, f"training on the {split.name} split")  # fmt: skip
                held = [queries[i] for i in split.held_out]
                advance = step(f"evaluating the {split.name} split", 4 * len(held))
                results = evaluate.compare(conn, prepared.collection, prepared.number, held, vectors[split.held_out],
                                           trained.weights, options.seed, advance)  # fmt: skip
                report["splits"][split.name] = {
                    "train": len(split.train), "held_out": len(split.held_out), "dropped": len(split.dropped),
                    "training": _training(trained), "results": results,
                }  # fmt: skip
        final = _fit(judged, queries, range(len(queries)), "document", frozenset(), options, step,
                     "training on every query")  # fmt: skip
        report["final"] = _training(final)
        report["peak_memory_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    finally:
        tracemalloc.stop()
    return final.weights, report


def save(db: Session, collection_name: str, weights: np.ndarray, report: dict[str, Any]) -> EmbeddingVersion:
    """A new version of the collection: the base's settings, the adapter WEIGHTS, the REPORT; the worker copies the
    base's vectors into it."""
    from app.versions import service as versions  # versions build on collections and on this module's callers

    collection = collections.get(db, collection_name, lock=True)
    base = base_version(db, collection, int(report["base"]))
    row = versions.add(db, collection, versions.settings_of(base), adapter=report)
    write_weights(db, row, weights)
    return row


def write_weights(db: Session, row: EmbeddingVersion, weights: np.ndarray) -> None:
    """Store W as the version's adapter rows (row i of W is the weights of row i)."""
    if weights.shape != (row.dimensions, row.dimensions):
        raise ValueError(f"an adapter of {row.dimensions} dimensions is {row.dimensions} square, not {weights.shape}")
    db.execute(insert(EmbeddingAdapter), [
        {"collection_id": row.collection_id, "version": row.number, "row": i, "weights": w}
        for i, w in enumerate(weights.astype(np.float32))
    ])  # fmt: skip
    db.flush()


def _fit(
    judged: training_data.Judged,
    queries: Sequence[JudgedQuery],
    positions: Sequence[int],
    carved_by: str,
    excluded: frozenset[str],
    options: Options,
    step: Step,
    description: str,
) -> Trained:
    """Train on the queries at POSITIONS (no document of EXCLUDED a negative), once per penalty of OPTIONS; the run
    whose best epoch ranks a validation set best wins. The validation set is carved from POSITIONS as the held-out
    set was carved from all (CARVED_BY query, or document: with its documents), so that what wins is what holds on
    such queries; the identity stays if nothing beats it."""
    positions = list(positions)
    carve = splits.by_document if carved_by == "document" else splits.by_query
    inner = carve([queries[i] for i in positions], options.seed + 1, options.validation)
    fit, held = [positions[i] for i in inner.train], [positions[i] for i in inner.held_out]
    data = judged.without(excluded | inner.held_out_documents)
    advance = step(description, options.epochs * len(options.penalties))
    runs = [train(data, fit, replace(options, penalty=penalty), lambda epoch, loss: advance(), validation=held)
            for penalty in options.penalties]  # fmt: skip
    return max(runs, key=lambda run: max(run.validation_mrr))


def _training(trained: Trained) -> dict[str, Any]:
    return {
        "penalty": trained.penalty,
        "seconds": round(trained.seconds, 2),
        "epochs": trained.epochs,
        "best_epoch": trained.best_epoch,
        "losses": [round(x, 4) for x in trained.losses],
        "validation_mrr": [round(x, 4) for x in trained.validation_mrr],
    }
