"""Chat completions from any OpenAI-compatible server, with errors a user can act on and the API key kept out.

Every failure becomes ChatProviderError (502) or UpstreamTimeoutError (504) with the server's own message, the key
masked in case a server echoes it. The first request is retried on 408, 409, 429, 5xx and lost connections, as
the embedding provider retries; a timeout is not retried, since a model that did not answer within the timeout
rarely answers the second time, and the caller is waiting. A stream is never retried once it has started.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from app.config import Settings
from app.embeddings.openai_provider import retry_after_seconds
from app.errors import AppError, ChatProviderError, UpstreamTimeoutError

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 409, 429})
_DETAIL_CHARS = 500
_MAX_WAIT_SECONDS = 30.0
_T = TypeVar("_T")


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None

    @classmethod
    def of(cls, usage: Any) -> TokenUsage:
        if usage is None:
            return cls()
        return cls(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    finish_reason: str | None
    usage: TokenUsage


class ChatClient:
    """One server's chat completions; use it in a with block, or close() it."""

    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        secret = settings.openai_api_key
        key = (secret.get_secret_value() if secret else None) or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ChatProviderError(
                "the chat model needs an API key: set MEMORA_OPENAI_API_KEY or OPENAI_API_KEY (any value for a server "
                "that does not check keys)"
            )
        self._key = key
        self.timeout = settings.openai_timeout_seconds
        self.max_retries = settings.openai_max_retries
        self._sleep = sleep
        # The client's own retries are off: _create retries, but not timeouts, and logs each retry.
        self._client = openai.OpenAI(
            api_key=key, base_url=base_url or settings.openai_base_url, timeout=self.timeout, max_retries=0
        )
        self.server = _without_userinfo(str(self._client.base_url))

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def complete(
        self, model: str, messages: Sequence[ChatCompletionMessageParam], temperature: float | None
    ) -> Completion:
        """The model's whole reply to MESSAGES."""
        response = self._create(
            model,
            lambda: self._client.chat.completions.create(
                model=model, messages=messages, temperature=_given(temperature)
            ),
        )
        if not response.choices:
            raise ChatProviderError(f"{self._where(model)}: the reply holds no choices")
        choice = response.choices[0]
        text = choice.message.content or ""
        return Completion(text, response.model or model, choice.finish_reason, TokenUsage.of(response.usage))

    def stream(
        self, model: str, messages: Sequence[ChatCompletionMessageParam], temperature: float | None
    ) -> ChatStream:
        """The model's reply as it is written. The request is made here, so refusals raise here, not mid-stream;
        the stream owns the client from now on and closes it."""
        raw = self._create(
            model,
            lambda: self._client.chat.completions.create(
                model=model,
                messages=messages,
                temperature=_given(temperature),
                stream=True,
                stream_options={"include_usage": True},
            ),
        )
        return ChatStream(self, raw, model)

    def _create(self, model: str, call: Callable[[], _T]) -> _T:
        attempt = 0
        while True:
            wait = None
            try:
                return call()
            except openai.APITimeoutError:
                raise self.timed_out(model) from None
            except openai.APIStatusError as exc:
                reason = f"HTTP {exc.status_code}: {self._detail(exc)}"
                retry = exc.status_code in _RETRY_STATUSES or exc.status_code >= 500
                wait = retry_after_seconds(exc.response.headers)
            except openai.APIConnectionError as exc:
                reason, retry = f"connection failed ({self.scrub(str(exc.__cause__ or exc))})", True
            except (openai.OpenAIError, ValueError) as exc:
                reason, retry = self.scrub(f"{type(exc).__name__}: {exc}"), False
            if not retry or attempt >= self.max_retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise ChatProviderError(f"{self._where(model)}{tries}: {reason}") from None
            if wait is None:
                wait = 0.5 * 2**attempt * random.uniform(0.5, 1.0)
            wait = min(wait, _MAX_WAIT_SECONDS)
            attempt += 1
            log.warning("%s: %s; retry %d of %d in %.2fs", self._where(model), reason, attempt, self.max_retries, wait)
            self._sleep(wait)

    def failed(self, model: str, exc: Exception) -> AppError:
        """EXC, raised while reading a stream, as the error to report."""
        if isinstance(exc, openai.APITimeoutError):
            return self.timed_out(model)
        if isinstance(exc, openai.APIConnectionError):
            reason = f"connection lost ({self.scrub(str(exc.__cause__ or exc))})"
        elif isinstance(exc, openai.APIError):
            reason = self._detail(exc)
        else:
            reason = self.scrub(f"unreadable stream: {type(exc).__name__}: {exc}")[:_DETAIL_CHARS]
        return ChatProviderError(f"{self._where(model)} failed mid-answer: {reason}")

    def timed_out(self, model: str) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(f"{self._where(model)}: no answer within {self.timeout:g}s")

    def scrub(self, text: str) -> str:
        """TEXT with the API key masked."""
        return text.replace(self._key, "***")

    def _where(self, model: str) -> str:
        return f"chat model {model} at {self.server}"

    def _detail(self, exc: openai.APIError) -> str:
        body = exc.body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            body = body["error"]
        if isinstance(body, dict) and "message" in body:
            body = body["message"]
        return self.scrub(str(body if body is not None else exc.message))[:_DETAIL_CHARS]


class ChatStream:
    """The text deltas of a streamed reply; after them, finish_reason and usage. close() ends the request."""

    def __init__(self, client: ChatClient, raw: openai.Stream[ChatCompletionChunk], model: str) -> None:
        self._client = client
        self._raw = raw
        self.model = model
        self.finish_reason: str | None = None
        self.usage = TokenUsage()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[str]:
        requested = self.model
        try:
            for chunk in self._raw:
                self.model = chunk.model or self.model
                if chunk.usage is not None:
                    self.usage = TokenUsage.of(chunk.usage)
                for choice in chunk.choices:
                    self.finish_reason = choice.finish_reason or self.finish_reason
                    if choice.delta is not None and choice.delta.content:
                        yield choice.delta.content
        except (openai.OpenAIError, ValueError) as exc:
            raise self._client.failed(requested, exc) from None
        if self.finish_reason is None:
            # A server that closes a close-delimited stream early looks like one that finished, but for this.
            raise ChatProviderError(
                f"chat model {requested} at {self._client.server} failed mid-answer: the stream ended before the "
                "model finished"
            )

    def close(self) -> None:
        """Close the response (the server sees the connection go) and the client."""
        try:
            self._raw.close()
        finally:
            self._client.close()


def _given(value: float | None) -> float | openai.Omit:
    return openai.omit if value is None else value


def _without_userinfo(url: str) -> str:
    """URL without user:password@, which would otherwise reach error messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url.rstrip("/")
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit(parts._replace(netloc=netloc)).rstrip("/")
