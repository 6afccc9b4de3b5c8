"""Chat completions from any OpenAI-compatible server, with errors a user can act on and the API key kept out.

Every failure becomes ChatProviderError (502) or UpstreamTimeoutError (504) with the server's own message, the key
masked in case a server echoes it; the request is retried as app/upstream.py retries. A stream is never retried
once it has started.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from app.errors import AppError, ChatProviderError
from app.upstream import DETAIL_CHARS, Upstream


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


class ChatClient(Upstream):
    """One server's chat completions; use it in a with block, or close() it."""

    error = ChatProviderError
    needed_by = "the chat model"

    def complete(
        self, model: str, messages: Sequence[ChatCompletionMessageParam], temperature: float | None
    ) -> Completion:
        """The model's whole reply to MESSAGES."""
        response = self.call(
            self._where(model),
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
        raw = self.call(
            self._where(model),
            lambda: self._client.chat.completions.create(
                model=model,
                messages=messages,
                temperature=_given(temperature),
                stream=True,
                stream_options={"include_usage": True},
            ),
        )
        return ChatStream(self, raw, model)

    def failed(self, model: str, exc: Exception) -> AppError:
        """EXC, raised while reading a stream, as the error to report."""
        if isinstance(exc, openai.APITimeoutError):
            return self.timed_out(self._where(model))
        if isinstance(exc, openai.APIConnectionError):
            reason = f"connection lost ({self.scrub(str(exc.__cause__ or exc))})"
        elif isinstance(exc, openai.APIError):
            reason = self.detail(exc)
        else:
            reason = self.scrub(f"unreadable stream: {type(exc).__name__}: {exc}")[:DETAIL_CHARS]
        return ChatProviderError(f"{self._where(model)} failed mid-answer: {reason}")

    def _where(self, model: str) -> str:
        return f"chat model {model} at {self.server}"


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
