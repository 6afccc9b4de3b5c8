"""Answer a question from a collection: search, keep the relevant chunks, pack them by tokens, ask a chat model.

The database work happens first and its transaction ends before the model is asked: an answer takes seconds, and a
connection should not sit idle in a transaction meanwhile. A stream's sources go out before its first token.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletionMessageParam
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.collections import service as collections
from app.config import Settings
from app.errors import AppError, ChatProviderError, InvalidInputError, location, problems_of
from app.rag import prompt
from app.rag.llm import ChatClient, ChatStream, TokenUsage
from app.rag.schemas import (
    NO_RELEVANT_SOURCES,
    AnswerRequest,
    AnswerResponse,
    Source,
    Usage,
)
from app.search import service as search
from app.search.schemas import SearchRequest, SearchResult
from app.training.formats.tokens import count_text_tokens

# The blank line between two sources: one token in o200k_base and cl100k_base.
SEPARATOR_TOKENS = 1

Event = tuple[str, dict[str, Any]]


@dataclass
class Prepared:
    """A question with its sources packed and its prompt written, ready for the model."""

    model: str
    temperature: float | None
    sources: list[Source]
    messages: list[ChatCompletionMessageParam]
    context_tokens: int
    retrieved: int
    min_score: float | None
    started: float = field(default_factory=time.perf_counter)
    model_given: bool = False  # named by the request, rather than MEMORA_CHAT_MODEL

    def refused(self, exc: ChatProviderError) -> AppError:
        """EXC, or a 422 naming body.model when the server has no model of the name the request gave."""
        return exc.unknown_model("body.model", self.model) if self.model_given else exc

    def response(
        self,
        answer: str | None,
        finish_reason: str | None = None,
        usage: TokenUsage | None = None,
        model: str | None = None,
    ) -> AnswerResponse:
        """The response for ANSWER; None means no source was relevant and the model was not asked."""
        cited = prompt.citations(answer or "", len(self.sources))
        usage = usage or TokenUsage()
        return AnswerResponse(
            answer=answer,
            reason=NO_RELEVANT_SOURCES if answer is None else None,
            model=model or self.model,
            sources=[source.model_copy(update={"cited": source.n in cited}) for source in self.sources],
            citations=cited,
            finish_reason=finish_reason,
            usage=Usage(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
                context_tokens=self.context_tokens,
            ),
            retrieved=self.retrieved,
            min_score=self.min_score,
            took_ms=round((time.perf_counter() - self.started) * 1000, 2),
        )


def prepare(db: Session, settings: Settings, name: str, request: AnswerRequest) -> Prepared:
    """Retrieve, apply the floor, pack the sources and write the prompt; ends the session's transaction."""
    started = time.perf_counter()
    collection = collections.get(db, name)
    # Only cosine similarity has a scale on which one default floor means the same in every collection.
    explicit = "min_score" in request.model_fields_set
    floor = request.min_score if explicit or collection.metric == "cosine" else None
    model = request.model or settings.chat_model
    results = _retrieve(db, settings, name, request)
    db.commit()
    relevant = [result for result in results if _relevant(result, floor)]
    sources, blocks, used = pack(relevant, model, request.max_context_tokens)
    return Prepared(
        model=model,
        temperature=request.temperature,
        sources=sources,
        messages=prompt.messages(request.question, blocks, request.system_prompt),
        context_tokens=used,
        retrieved=len(results),
        min_score=floor,
        started=started,
        model_given=request.model is not None,
    )


def answer(db: Session, settings: Settings, name: str, request: AnswerRequest) -> AnswerResponse:
    """The whole answer at once; without relevant sources, a response that says so and no call to the model."""
    prepared = prepare(db, settings, name, request)
    if not prepared.sources:
        return prepared.response(None)
    with ChatClient(settings) as chat:
        try:
            completion = chat.complete(prepared.model, prepared.messages, prepared.temperature)
        except ChatProviderError as exc:
            raise prepared.refused(exc) from None
    return prepared.response(completion.text, completion.finish_reason, completion.usage, completion.model)


def open_stream(settings: Settings, prepared: Prepared) -> ChatStream | None:
    """Start the model's streamed reply (None without sources); a refusal or timeout raises here, before any event."""
    if not prepared.sources:
        return None
    chat = ChatClient(settings)
    try:
        return chat.stream(prepared.model, prepared.messages, prepared.temperature)
    except ChatProviderError as exc:
        chat.close()
        raise prepared.refused(exc) from None
    except BaseException:
        chat.close()
        raise


def events(prepared: Prepared, stream: ChatStream | None) -> Generator[Event, None, None]:
    """The answer as events: `sources`, a `delta` per piece of text, then `done` with citations and usage.

    A failure of the model mid-answer raises AppError after the deltas so far. Closing the iterator early (the
    client went away) closes the stream, and with it the request to the model.
    """
    yield (
        "sources",
        {
            "sources": [source.model_dump() for source in prepared.sources],
            "model": prepared.model,
            "retrieved": prepared.retrieved,
            "min_score": prepared.min_score,
            "context_tokens": prepared.context_tokens,
        },
    )
    if stream is None:
        yield "done", prepared.response(None).model_dump(exclude={"sources"})
        return
    parts: list[str] = []
    with stream:
        for text in stream:
            parts.append(text)
            yield "delta", {"text": text}
    done = prepared.response("".join(parts), stream.finish_reason, stream.usage, stream.model)
    yield "done", done.model_dump(exclude={"sources"})


def pack(results: Sequence[SearchResult], model: str, budget: int) -> tuple[list[Source], list[str], int]:
    """The results that fit BUDGET tokens, in order, numbered from 1; their prompt blocks; the tokens used.

    A source that does not fit is skipped and a later, shorter one may take its place. When even the best one
    does not fit, the budget is too small to answer from: a 422 naming max_context_tokens.
    """
    sources: list[Source] = []
    blocks: list[str] = []
    used = 0
    for result in results:
        n = len(sources) + 1
        text = result.text or ""
        block = prompt.source_block(n, result.title, text)
        tokens = count_text_tokens(block, model)
        cost = tokens + (SEPARATOR_TOKENS if sources else 0)
        if used + cost > budget:
            if not sources:
                raise InvalidInputError.for_field(
                    "body.max_context_tokens",
                    f"the best source (chunk {result.chunk_id} of {result.external_id!r}) takes {tokens} tokens, "
                    f"more than the budget of {budget}",
                )
            continue
        similarity = result.scores.vector.score if result.scores and result.scores.vector else None
        sources.append(
            Source(
                n=n, cited=False, chunk_id=result.chunk_id, document_id=result.document_id,
                external_id=result.external_id, ordinal=result.ordinal, char_start=result.char_start,
                char_end=result.char_end, title=result.title, score=result.score, similarity=similarity, text=text,
                tokens=tokens,
            )
        )  # fmt: skip
        blocks.append(block)
        used += cost
    return sources, blocks, used


def _retrieve(db: Session, settings: Settings, name: str, request: AnswerRequest) -> list[SearchResult]:
    """Search with the question as the query; errors about the query name body.question."""
    try:
        query = SearchRequest(
            query=request.question,
            k=request.k,
            filter=request.filter,
            mode=request.mode,
            include=["text", "scores"],
            rerank=request.rerank,
        )
    except ValidationError as exc:
        raise _renamed(InvalidInputError.for_problems(problems_of(exc, lambda loc: location(loc, "body")))) from None
    try:
        return search.search(db, settings, name, query).results
    except InvalidInputError as exc:
        raise _renamed(exc) from None


def _renamed(exc: InvalidInputError) -> InvalidInputError:
    """EXC with the search's body.query called body.question, the field this request has."""
    return exc.renamed("body.query", "body.question")


def _relevant(result: SearchResult, floor: float | None) -> bool:
    """A chunk passes when there is no floor, when it matched the question's words, or when its vector similarity
    reaches the floor."""
    if floor is None or result.scores is None:
        return True
    if result.scores.text is not None:
        return True
    return result.scores.vector is not None and result.scores.vector.score >= floor
