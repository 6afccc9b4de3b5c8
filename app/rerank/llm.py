"""A reranker behind an OpenAI-compatible server's /v1/rerank, the endpoint Cohere, Jina, vLLM and LiteLLM share.

Request `{"model", "query", "documents": [text, ...], "top_n"}`, reply `{"results": [{"index", "relevance_score"},
...]}`. One call scores all the candidates with a real cross-encoder (vLLM serves bge-reranker and
ms-marco-MiniLM this way), where asking a chat model for a relevance number would take one call per candidate and
seconds each. The server is MEMORA_OPENAI_BASE_URL with MEMORA_OPENAI_API_KEY, as for chat and embeddings; failures
are handled as for every OpenAI-compatible server (app/upstream.py): retried on 408, 409, 429, 5xx and lost
connections, a timeout not retried, the key masked in every message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from app.config import Settings
from app.errors import UpstreamError
from app.upstream import Upstream


class RerankProviderError(UpstreamError):
    """The rerank server failed, refused, or sent a reply that does not score every candidate."""

    code = "rerank_provider"


class OpenAICompatibleReranker(Upstream):
    """POST /v1/rerank on an OpenAI-compatible server; close() it, or use it in a with block."""

    provider = "openai"
    error = RerankProviderError
    needed_by = "the rerank model"

    def __init__(self, settings: Settings, model: str) -> None:
        super().__init__(settings)
        self.model = model

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """The server's relevance score of each document, in the documents' order."""
        if not documents:
            return []
        body = {"model": self.model, "query": query, "documents": list(documents), "top_n": len(documents)}
        reply = self.call(self._where(), lambda: self._client.post("/rerank", cast_to=object, body=body))
        return self._scores(reply, len(documents))

    def _scores(self, reply: Any, count: int) -> list[float]:
        """Scores by index from the reply; a reply that leaves a candidate out or scores it oddly is an error."""
        results = reply.get("results") if isinstance(reply, dict) else None
        if not isinstance(results, list):
            raise RerankProviderError(f"{self._where()}: the reply has no list of results")
        scores: list[float | None] = [None] * count
        for item in results:
            index = item.get("index") if isinstance(item, dict) else None
            value = item.get("relevance_score") if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < count or scores[index] is not None:
                raise RerankProviderError(f"{self._where()}: a result has a missing, repeated or unknown index")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise RerankProviderError(f"{self._where()}: result {index} has no finite relevance_score")
            scores[index] = float(value)
        missing = [index for index, value in enumerate(scores) if value is None]
        if missing:
            raise RerankProviderError(
                f"{self._where()}: the reply scores {count - len(missing)} of {count} documents (first missing: "
                f"{missing[0]})"
            )
        return [value for value in scores if value is not None]

    def _where(self) -> str:
        return f"rerank model {self.model} at {self.server}"
