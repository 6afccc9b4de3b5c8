"""What a reranker is: a model that scores (query, document) pairs together, where retrieval scored them apart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Reranker(Protocol):
    """Scores each document's relevance to a query; higher is more relevant, on the model's own scale."""

    provider: str
    model: str

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """One score per document, in the documents' order."""
        ...

    def close(self) -> None:
        """Release connections or sessions."""
        ...
