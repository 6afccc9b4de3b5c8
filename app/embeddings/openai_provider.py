"""OpenAI embeddings, or any server that speaks the same API (vLLM, Ollama, LiteLLM...), with explicit retries.

numpy and the openai package are imported when they are used: app/upstream.py imports this module for
retry_after_seconds, and the openai package takes half a second to import.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

from app.embeddings.base import Tokenizer, Vectors, WordTokenizer
from app.errors import EmbeddingProviderError
from app.observe import metrics

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000
BACKOFF_SECONDS = 0.5  # the first wait before a retry the server did not time; doubled each attempt, jittered
MAX_WAIT_SECONDS = 60.0  # the longest wait before a retry, whatever Retry-After asks
_RETRY_STATUSES = frozenset({408, 409, 429})
# Refusals of the request as such, whatever its texts: a bad key, no permission, no such model.
_WHOLE_REQUEST_STATUSES = frozenset({401, 403, 404})
_DETAIL_CHARS = 300
_WORDS = WordTokenizer()


def estimate_tokens(text: str) -> int:
    """A generous token count without tiktoken: the larger of words + punctuation marks and UTF-8 bytes / 3."""
    return max(len(_WORDS.token_spans(text)), math.ceil(len(text.encode()) / 3))


def retry_after_seconds(headers: Any) -> float | None:
    """The wait a response asks for in retry-after-ms or Retry-After (seconds or an HTTP date), if any."""
    if headers is None:
        return None
    if (value := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(value) / 1000, 0.0)
        except ValueError:
            pass
    if (value := headers.get("retry-after")) is not None:
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            return max((when - datetime.now(UTC)).total_seconds(), 0.0)
    return None


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible /v1/embeddings endpoint.

    The tokenizer is WordTokenizer, an estimate: tiktoken is not installed and its encodings would be a download.
    BPE gives more tokens than words (about 1.3 per English word), so chunks near max_input_tokens words may be
    rejected by the API; chunk sizes of a few hundred tokens are far from that.
    """

    provider = "openai"
    max_input_tokens = 8191

    def __init__(
        self,
        model: str,
        dimensions: int,
        *,
        base_url: str | None = None,
        api_key: SecretStr | str | None = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        batch_size: int = MAX_INPUTS_PER_REQUEST,
    ) -> None:
        self.model = model
        self.dimensions = dimensions
        self.tokenizer: Tokenizer = WordTokenizer()
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.batch_size = max(1, min(batch_size, MAX_INPUTS_PER_REQUEST))
        # Only the text-embedding-3 models shorten their vectors on request; others refuse the parameter.
        self.send_dimensions = model.startswith("text-embedding-3")
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        key = key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise EmbeddingProviderError(
                "the openai provider needs an API key: set MEMORA_OPENAI_API_KEY or OPENAI_API_KEY (any value for a "
                "server that does not check keys)",
                permanent=True,
                whole_request=True,
            )
        self._secret = SecretStr(key)
        import openai

        # The client's own retries are off: the loop in _request retries, logs and caps the waits.
        self._client = openai.OpenAI(api_key=key, base_url=base_url, timeout=timeout, max_retries=0)

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model!r}, dimensions={self.dimensions}, base_url={self.base_url!r})"

    def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for batch in self._batches(texts):
            vectors[batch.start : batch.stop] = self._request([texts[i] for i in batch])
        return vectors

    def _batches(self, texts: Sequence[str]) -> Iterator[range]:
        """Consecutive slices within the API's limits on inputs and (estimated) tokens per request."""
        start, tokens = 0, 0
        for index, text in enumerate(texts):
            estimate = estimate_tokens(text)
            if index > start and (index - start >= self.batch_size or tokens + estimate > MAX_TOKENS_PER_REQUEST):
                yield range(start, index)
                start, tokens = index, 0
            tokens += estimate
        if start < len(texts):
            yield range(start, len(texts))

    def _request(self, texts: list[str]) -> Vectors:
        """One request, retried on 408, 409, 429, 5xx, timeouts and lost connections.

        Any other failure is permanent (the error says so): the same request would meet the same 400, 401, 403 or
        404, so the worker fails its documents at once rather than retrying them for the next half hour.
        """
        import openai

        extra: dict[str, Any] = {"dimensions": self.dimensions} if self.send_dimensions else {}
        attempt, whole_request = 0, False
        while True:
            about: Literal["model"] | None = None
            try:
                response = self._client.embeddings.create(model=self.model, input=texts, **extra)
                return self._vectors(response, len(texts))
            except openai.APIStatusError as exc:
                reason = f"HTTP {exc.status_code}: {self._detail(exc)}"
                retry = exc.status_code in _RETRY_STATUSES or exc.status_code >= 500
                whole_request = retry or exc.status_code in _WHOLE_REQUEST_STATUSES
                wait = retry_after_seconds(exc.response.headers)
                kind = metrics.status_kind(exc.status_code)
                about = "model" if exc.status_code == 404 else None
            except openai.APITimeoutError:
                reason, retry, wait = f"no answer within {self.timeout:g}s", True, None
                whole_request = True
                kind = "timeout"
            except openai.APIConnectionError as exc:
                reason, retry, wait = f"connection failed ({self._scrub(str(exc.__cause__ or exc))})", True, None
                whole_request = True
                kind = "connection"
            except (openai.OpenAIError, ValueError) as exc:
                reason, retry, wait = self._scrub(f"{type(exc).__name__}: {exc}"), False, None
                whole_request = False
                kind = "other"
            metrics.provider_failed("openai", kind, retried=retry and attempt < self.max_retries)
            if not retry or attempt >= self.max_retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise EmbeddingProviderError(
                    f"embedding model {self.model}{tries}: {reason}",
                    permanent=not retry,
                    whole_request=whole_request,
                    about=about,
                ) from None
            if wait is None:
                wait = BACKOFF_SECONDS * 2**attempt * random.uniform(0.5, 1.0)
            wait = min(wait, MAX_WAIT_SECONDS)
            attempt += 1
            log.warning(
                "embedding model %s: %s; retry %d of %d in %.2fs", self.model, reason, attempt, self.max_retries, wait
            )
            time.sleep(wait)

    def _vectors(self, response: Any, count: int) -> Vectors:
        """The response's vectors in input order, after checking there is one of the right width per input."""
        import numpy as np

        data = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in data] != list(range(count)):
            raise EmbeddingProviderError(
                f"embedding model {self.model}: {len(data)} vectors came back for {count} inputs"
            )
        for item in data:
            if len(item.embedding) != self.dimensions:
                raise EmbeddingProviderError(
                    f"embedding model {self.model} returned {len(item.embedding)}-dimensional vectors, expected "
                    f"{self.dimensions} (does the model support this many dimensions?)",
                    permanent=True,
                    whole_request=True,
                    about="dimensions",
                )
        return np.asarray([item.embedding for item in data], dtype=np.float32)

    def _detail(self, exc: openai.APIStatusError) -> str:
        body = exc.body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            body = body["error"].get("message", body)
        elif isinstance(body, dict) and "message" in body:
            body = body["message"]
        return self._scrub(str(body if body is not None else exc.message))[:_DETAIL_CHARS]

    def _scrub(self, text: str) -> str:
        """The text with the API key masked, in case a server echoes it."""
        return text.replace(self._secret.get_secret_value(), "***")
