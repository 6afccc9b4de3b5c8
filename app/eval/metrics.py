"""Retrieval metrics as BEIR reports them (pytrec_eval / trec_eval definitions), on ranked document ids.

Judgments map a document id to its graded relevance (qrels); a document counts as relevant when its grade is above
0, and unjudged documents count as grade 0. nDCG uses the grade itself as the gain, log2(rank + 1) as the discount,
and the ideal ranking of the judged documents (all of them, found or not) as the normaliser.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

Judgments = Mapping[str, int]


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain: sum of gain / log2(rank + 1), ranks from 1."""
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def ndcg_at(ranking: Sequence[str], judgments: Judgments, k: int = 10) -> float:
    """nDCG@k with graded gains; 0 when no judged document is relevant."""
    ideal = dcg(sorted((grade for grade in judgments.values() if grade > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([max(judgments.get(doc, 0), 0) for doc in ranking[:k]]) / ideal


def recall_at(ranking: Sequence[str], judgments: Judgments, k: int) -> float:
    """Share of the relevant documents found in the first k; 0 when none is relevant."""
    relevant = {doc for doc, grade in judgments.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at(ranking: Sequence[str], judgments: Judgments, k: int = 10) -> float:
    """1 / rank of the first relevant document in the first k, else 0."""
    return next((1 / rank for rank, doc in enumerate(ranking[:k], start=1) if judgments.get(doc, 0) > 0), 0.0)


@dataclass(frozen=True)
class QueryScores:
    """One query's metrics."""

    ndcg_10: float
    recall_10: float
    recall_100: float
    mrr_10: float


def score(ranking: Sequence[str], judgments: Judgments) -> QueryScores:
    """The metrics of one ranked list of distinct document ids."""
    return QueryScores(
        ndcg_at(ranking, judgments, 10),
        recall_at(ranking, judgments, 10),
        recall_at(ranking, judgments, 100),
        mrr_at(ranking, judgments, 10),
    )


METRIC_NAMES = {"ndcg_10": "ndcg@10", "recall_10": "recall@10", "recall_100": "recall@100", "mrr_10": "mrr@10"}


def mean_scores(scores: Sequence[QueryScores]) -> dict[str, float]:
    """Each metric averaged over the queries, keyed as BEIR names them (ndcg@10, recall@10, recall@100, mrr@10)."""
    if not scores:
        return dict.fromkeys(METRIC_NAMES.values(), 0.0)
    rows = [asdict(s) for s in scores]
    return {name: sum(row[field] for row in rows) / len(rows) for field, name in METRIC_NAMES.items()}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks (numpy's default); 0 for no values."""
    return float(np.percentile(values, q)) if len(values) else 0.0
