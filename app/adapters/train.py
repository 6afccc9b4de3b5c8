"""A linear query adapter trained with numpy: W maps a query vector q to W q, and documents keep their vectors.

The loss is InfoNCE with temperature tau over dot products: for a query q_i whose positive is p_i, the candidates are
every positive of the batch (in-batch negatives) and H hard negatives of q_i (chunks the base search ranks high that
are not relevant to it), and loss_i = -log softmax((W q_i . c) / tau)[p_i]. A candidate relevant to q_i other than
p_i is masked out. With U = Q W^T, the gradient is

    dL/dW = G^T Q / B + 2 lambda (W - I),   G_i = sum_c (softmax_c - [c = p_i]) c / tau

W starts at the identity (the base model) and the penalty keeps it near; Adam takes the steps. A seeded tenth of the
training queries is kept to choose the epoch: the W whose positives rank best among every known vector (mean
reciprocal rank) is the one returned. Everything random comes from numpy.random.default_rng(seed): the same data and
seed give the same W on the same machine (BLAS may order sums differently on another).

Ranking by W q . d is ranking by the cosine of W q and d when documents are unit vectors (the models here make unit
vectors): the norm of W q is the same for every document of a query.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

Progress = Callable[[int, float], None]  # (epoch done, its mean loss)
MAX_VALIDATION = 500  # queries, whatever the share: each epoch ranks every vector for each


@dataclass
class TrainingData:
    """Base vectors of judged queries and of the chunks they relate to, by index."""

    queries: np.ndarray  # (Q, d) float32: the base model's query vectors
    vectors: np.ndarray  # (V, d) float32: chunk vectors of the base version, each once
    positives: list[list[int]]  # per query: the vector index of each relevant document's chunk
    negatives: list[list[int]]  # per query: vector indices of hard negatives (none relevant to it)

    def pairs(self, queries: Sequence[int]) -> np.ndarray:
        """(query, positive vector) index pairs of QUERIES."""
        rows = [(q, p) for q in queries for p in self.positives[q]]
        return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


@dataclass(frozen=True)
class Options:
    epochs: int = 30
    batch: int = 64
    negatives: int = 4  # hard negatives per query in a step
    learning_rate: float = 1e-3
    temperature: float = 0.05
    penalty: float = 1.0  # lambda: how hard W is pulled back to the identity
    penalties: tuple[float, ...] = (1.0, 0.1, 0.01)  # tried in turn by app/adapters/service.py, best on validation
    patience: int = 5  # epochs without a better validation score before stopping
    validation: float = 0.1  # of the training queries, to choose the epoch
    seed: int = 0


@dataclass
class Trained:
    weights: np.ndarray  # (d, d) float32
    epochs: int  # run
    best_epoch: int  # 0: the identity was best
    losses: list[float] = field(default_factory=list)
    validation_mrr: list[float] = field(default_factory=list)  # [0]: the identity's
    seconds: float = 0.0
    penalty: float = 0.0


def train(
    data: TrainingData,
    queries: Sequence[int],
    options: Options,
    progress: Progress | None = None,
    validation: Sequence[int] | None = None,
) -> Trained:
    """Fit W on the pairs of QUERIES (positions in DATA), choosing the epoch on VALIDATION (default: a seeded share
    of QUERIES, kept out of the fit)."""
    began = time.perf_counter()
    rng = np.random.default_rng(options.seed)
    order = rng.permutation(np.asarray(sorted(queries), dtype=np.int64))
    if validation is None:
        cut = min(max(1, round(len(order) * options.validation)), MAX_VALIDATION) if len(order) >= 10 else 0
        held, fit = order[:cut], order[cut:]
    else:
        held, fit = np.asarray(sorted(validation), dtype=np.int64)[:MAX_VALIDATION], order
    pairs = data.pairs(fit.tolist())
    if len(pairs) == 0:
        raise ValueError("no pairs to train on")
    d = data.vectors.shape[1]
    identity = np.eye(d, dtype=np.float32)
    weights = identity.copy()
    adam = _Adam(weights.shape, options.learning_rate)
    relevant = [set(p) for p in data.positives]
    best, best_score = weights.copy(), _mrr(data, held, weights)
    result = Trained(best, 0, 0, validation_mrr=[best_score], penalty=options.penalty)
    stale = 0
    for epoch in range(1, options.epochs + 1):
        losses = []
        pairs = pairs[rng.permutation(len(pairs))]
        for start in range(0, len(pairs), options.batch):
            batch = pairs[start : start + options.batch]
            loss, gradient = _step(data, batch, weights, relevant, options, rng)
            gradient += 2 * options.penalty * (weights - identity)
            weights -= adam.step(gradient)
            losses.append(loss)
        score = _mrr(data, held, weights)
        result.losses.append(float(np.mean(losses)))
        result.validation_mrr.append(score)
        result.epochs = epoch
        if progress is not None:
            progress(epoch, result.losses[-1])
        if score > best_score or not len(held):
            best, best_score, result.best_epoch, stale = weights.copy(), score, epoch, 0
        else:
            stale += 1
            if stale >= options.patience:
                break
    result.weights = best.astype(np.float32)
    result.seconds = time.perf_counter() - began
    return result


def _step(
    data: TrainingData,
    batch: np.ndarray,
    weights: np.ndarray,
    relevant: list[set[int]],
    options: Options,
    rng: np.random.Generator,
) -> tuple[float, np.ndarray]:
    """The batch's mean loss and its gradient with respect to W (without the penalty)."""
    query_ids, positive_ids = batch[:, 0], batch[:, 1]
    q = data.queries[query_ids]  # (B, d)
    p = data.vectors[positive_ids]  # (B, d)
    negative_ids = np.stack([_negatives(data, int(i), options.negatives, rng) for i in query_ids])  # (B, H)
    n = data.vectors[negative_ids]  # (B, H, d)
    u = q @ weights.T  # (B, d)
    logits = np.concatenate([u @ p.T, np.einsum("bd,bhd->bh", u, n)], axis=1) / options.temperature
    # Another positive of the batch that is relevant to the query is no negative of it.
    size = len(batch)
    mask = np.stack([np.isin(positive_ids, list(relevant[int(query)])) for query in query_ids])
    mask[np.arange(size), np.arange(size)] = False
    logits[:, :size][mask] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    loss = float(-np.mean(np.log(probabilities[np.arange(size), np.arange(size)] + 1e-12)))
    probabilities[np.arange(size), np.arange(size)] -= 1.0
    g = (probabilities[:, :size] @ p + np.einsum("bh,bhd->bd", probabilities[:, size:], n)) / options.temperature
    return loss, (g.T @ q / size).astype(np.float32)


def _negatives(data: TrainingData, query: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """COUNT hard negatives of QUERY, drawn from its mined ones (random vectors when it has none)."""
    mined = data.negatives[query]
    if mined:
        return np.asarray(mined, dtype=np.int64)[rng.integers(0, len(mined), count)]
    return rng.integers(0, len(data.vectors), count)


def _mrr(data: TrainingData, queries: np.ndarray, weights: np.ndarray) -> float:
    """Mean reciprocal rank of each query's best-ranked positive among every vector (0 with no queries), the
    positive ranked after every vector that scores as high."""
    if not len(queries):
        return 0.0
    total = 0.0
    for start in range(0, len(queries), 100):  # 100 rows of scores at a time: 40 MB at 100,000 vectors
        block = queries[start : start + 100]
        scores = (data.queries[block] @ weights.T) @ data.vectors.T  # (n, V)
        for row, query in enumerate(block):
            best = max(scores[row, p] for p in data.positives[int(query)])
            total += 1.0 / int(np.sum(scores[row] >= best))  # ties rank the positive last: no credit for a blank
    return total / len(queries)


class _Adam:
    def __init__(self, shape: tuple[int, ...], learning_rate: float, beta1: float = 0.9, beta2: float = 0.999) -> None:
        self.m = np.zeros(shape, dtype=np.float32)
        self.v = np.zeros(shape, dtype=np.float32)
        self.rate, self.beta1, self.beta2, self.t = learning_rate, beta1, beta2, 0

    def step(self, gradient: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = (self.beta1 * self.m + (1 - self.beta1) * gradient).astype(np.float32)
        self.v = (self.beta2 * self.v + (1 - self.beta2) * gradient**2).astype(np.float32)
        m = self.m / (1 - self.beta1**self.t)
        v = self.v / (1 - self.beta2**self.t)
        step: np.ndarray = (self.rate * m / (np.sqrt(v) + 1e-8)).astype(np.float32)
        return step
