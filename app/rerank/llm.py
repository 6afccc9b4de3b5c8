"""A reranker behind an OpenAI-compatible server's /v1/rerank, the endpoint Cohere, Jina, vLLM and LiteLLM share.

Request `{"model", "query", "documents": [text, ...], "top_n"}`, reply `{"results": [{"index", "relevance_score"},
...]}`. One call scores all the candidates with a real cross-encoder (vLLM serves bge-reranker and
ms-marco-MiniLM this way), where asking a chat model for a relevance number would take one call per candidate and
seconds each. The server is MEMORA_OPENAI_BASE_URL with MEMORA_OPENAI_API_KEY, as for chat and embeddings; failures
are handled as the chat client handles them (app/rag/llm.py): retried on 408, 409, 429, 5xx and lost connections,
a timeout not retried, the key masked in every message.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import openai

from app.config import Settings
from app.embeddings.openai_provider import retry_after_seconds
from app.errors import AppError, UpstreamTimeoutError
from app.rag.llm import _without_userinfo

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 409, 429})
_DETAIL_CHARS = 500
_MAX_WAIT_SECONDS = 30.0


class RerankProviderError(AppError):
    """The rerank server failed, refused, or sent a reply that does not score every candidate."""

    status = 502
    code = "rerank_provider"


class OpenAICompatibleReranker:
    """POST /v1/rerank on an OpenAI-compatible server; close() it, or use it in a with block."""

    provider = "openai"

    def __init__(
        self,
        settings: Settings,
        model: str,
        *,
        base_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        secret = settings.openai_api_key
        key = (secret.get_secret_value() if secret else None) or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise RerankProviderError(
                "the rerank model needs an API key: set MEMORA_OPENAI_API_KEY or OPENAI_API_KEY (any value for a "
                "server that does not check keys)"
            )
        self.model = model
        self._key = key
        self.timeout = settings.openai_timeout_seconds
        self.max_retries = settings.openai_max_retries
        self._sleep = sleep
        self._client = openai.OpenAI(
            api_key=key, base_url=base_url or settings.openai_base_url, timeout=self.timeout, max_retries=0
        )
        self.server = _without_userinfo(str(self._client.base_url))

    def __enter__(self) -> OpenAICompatibleReranker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """The server's relevance score of each document, in the documents' order."""
        if not documents:
            return []
        body = {"model": self.model, "query": query, "documents": list(documents), "top_n": len(documents)}
        reply = self._post(body)
        return self._scores(reply, len(documents))

    def _post(self, body: dict[str, Any]) -> Any:
        attempt = 0
        while True:
            wait = None
            try:
                return self._client.post("/rerank", cast_to=object, body=body)
            except openai.APITimeoutError:
                raise UpstreamTimeoutError(f"{self._where()}: no answer within {self.timeout:g}s") from None
            except openai.APIStatusError as exc:
                reason = f"HTTP {exc.status_code}: {self._detail(exc)}"
                retry = exc.status_code in _RETRY_STATUSES or exc.status_code >= 500
                wait = retry_after_seconds(exc.response.headers)
            except openai.APIConnectionError as exc:
                reason, retry = f"connection failed ({self._scrub(str(exc.__cause__ or exc))})", True
            except (openai.OpenAIError, ValueError) as exc:
                reason, retry = self._scrub(f"{type(exc).__name__}: {exc}"), False
            if not retry or attempt >= self.max_retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise RerankProviderError(f"{self._where()}{tries}: {reason}") from None
            wait = min(wait if wait is not None else 0.5 * 2**attempt * random.uniform(0.5, 1.0), _MAX_WAIT_SECONDS)
            attempt += 1
            log.warning("%s: %s; retry %d of %d in %.2fs", self._where(), reason, attempt, self.max_retries, wait)
            self._sleep(wait)

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

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***")

    def _detail(self, exc: openai.APIError) -> str:
        body = exc.body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            body = body["error"]
        if isinstance(body, dict) and "message" in body:
            body = body["message"]
        return self._scrub(str(body if body is not None else exc.message))[:_DETAIL_CHARS]
