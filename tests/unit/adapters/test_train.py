"""The adapter trainer and the held-out splits (app/adapters/), on data whose answer is known."""

from __future__ import annotations

import numpy as np

from app.adapters import splits
from app.adapters.train import Options, TrainingData, _mrr, train
from app.eval.service import JudgedQuery


def rotated(seed: int = 1, d: int = 32, documents: int = 1000, queries: int = 600) -> TrainingData:
    """Queries that are their document's vector turned by a fixed rotation (plus noise): the identity finds few of
    them, and the map that turns them back finds most."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(documents, d)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rotation = np.linalg.qr(rng.normal(size=(d, d)))[0].astype(np.float32)
    targets = rng.integers(0, documents, queries)
    query_vectors = vectors[targets] @ rotation + 0.2 * rng.normal(size=(queries, d)).astype(np.float32)
    negatives = [[int(n) for n in rng.integers(0, documents, 8)] for _ in range(queries)]
    return TrainingData(query_vectors.astype(np.float32), vectors, [[int(t)] for t in targets], negatives)


def test_training_learns_a_hidden_rotation_and_ranks_held_out_queries_far_better() -> None:
    data = rotated()
    held_out = np.arange(500, 600)

    trained = train(data, range(500), Options(epochs=30, learning_rate=1e-2, penalty=0.0))

    identity = np.eye(32, dtype=np.float32)
    assert _mrr(data, held_out, identity) < 0.05
    assert _mrr(data, held_out, trained.weights) > 0.5
    assert trained.losses[-1] < trained.losses[0] / 3
    assert 1 <= trained.best_epoch <= trained.epochs


def test_training_is_deterministic_for_a_seed_and_differs_for_another() -> None:
    data = rotated()
    options = Options(epochs=3, learning_rate=1e-2)

    first = train(data, range(500), options)
    again = train(data, range(500), options)
    other = train(data, range(500), Options(epochs=3, learning_rate=1e-2, seed=1))

    assert np.array_equal(first.weights, again.weights)
    assert not np.array_equal(first.weights, other.weights)


def test_the_penalty_keeps_the_map_near_the_identity() -> None:
    data = rotated()
    options = {"epochs": 5, "learning_rate": 1e-2, "patience": 100, "validation": 0.0}

    free = train(data, range(500), Options(penalty=0.0, **options))
    held = train(data, range(500), Options(penalty=100.0, **options))

    identity = np.eye(32)
    assert np.linalg.norm(held.weights - identity) < np.linalg.norm(free.weights - identity) / 2


def judged(n: int = 100) -> list[JudgedQuery]:
    """Query i judges documents d{i} and d{i+1}: neighbours share a document."""
    return [JudgedQuery(f"q{i}", f"query {i}", {f"d{i}": 1, f"d{i + 1}": 1}) for i in range(n)]


def test_the_query_split_holds_out_a_fifth_and_may_share_documents_with_training() -> None:
    queries = judged()

    split = splits.by_query(queries, seed=0)

    assert len(split.held_out) == 20
    assert sorted(split.train + split.held_out) == list(range(100))
    train_documents = set().union(*(splits.relevant(queries[i]) for i in split.train))
    assert any(splits.relevant(queries[i]) & train_documents for i in split.held_out)


def test_the_document_split_keeps_every_held_out_document_out_of_training() -> None:
    queries = judged()

    split = splits.by_document(queries, seed=0)

    held_documents = set().union(*(splits.relevant(queries[i]) for i in split.held_out))
    assert len(split.held_out) == 20
    assert held_documents == split.held_out_documents
    assert not any(splits.relevant(queries[i]) & held_documents for i in split.train)
    assert split.dropped  # neighbours of held-out queries share a document with them
    assert sorted(split.train + split.held_out + split.dropped) == list(range(100))
    assert splits.by_document(queries, seed=0) == split
    assert splits.by_document(queries, seed=1) != split
