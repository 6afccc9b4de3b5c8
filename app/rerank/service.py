"""Rerank search hits: score the first top_n with a reranker, order them by its score, keep their former ranks.

Generic over the hit type, so search (SearchResult) and the benchmarks (plain rows) share it; the caller says how
to read a hit's text. Hits past top_n keep their order after the reranked ones, with no rerank score.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.config import Settings
from app.errors import InvalidInputError
from app.rerank.base import Reranker
from app.rerank.llm import OpenAICompatibleReranker
from app.rerank.schemas import RerankOptions

T = TypeVar("T")


@dataclass(frozen=True)
class Reranked(Generic[T]):
    """A hit in its new place: rank after reranking, rank before it (both from 1), the reranker's score."""

    hit: T
    rank: int
    original_rank: int
    score: float | None  # None: the hit was past top_n and was not scored


@dataclass(frozen=True)
class RerankOutcome(Generic[T]):
    hits: list[Reranked[T]]
    took_ms: float


def get_reranker(options: RerankOptions, settings: Settings) -> Reranker:
    """The reranker OPTIONS name; a provider this installation lacks is a 422 naming body.rerank.provider."""
    if options.provider == "local":
        reason = (
            "no local cross-encoder is installed (no PyPI package ships one's weights); use provider openai with a "
            "server that serves /v1/rerank"
        )
        raise InvalidInputError.for_field("body.rerank.provider", reason)
    return OpenAICompatibleReranker(settings, options.model)


def rerank(reranker: Reranker, query: str, hits: Sequence[T], top_n: int, text: Callable[[T], str]) -> RerankOutcome[T]:
    """HITS with the first TOP_N re-scored and re-ordered by the reranker (ties keep their order), the rest after."""
    started = time.perf_counter()
    head, tail = list(hits[:top_n]), list(hits[top_n:])
    scores = reranker.score(query, [text(hit) for hit in head]) if head else []
    order = sorted(range(len(head)), key=lambda i: -scores[i])
    reranked = [Reranked(head[i], rank, i + 1, scores[i]) for rank, i in enumerate(order, start=1)]
    reranked += [Reranked(hit, len(head) + i + 1, len(head) + i + 1, None) for i, hit in enumerate(tail)]
    return RerankOutcome(reranked, round((time.perf_counter() - started) * 1000, 2))


def candidates_for(k: int, options: RerankOptions | None) -> int:
    """How many hits a search must fetch so that the reranker sees top_n of them and k come back."""
    return k if options is None else max(k, options.top_n)
