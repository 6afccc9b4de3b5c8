"""/v1/collections/{name}/answer: a chat model's answer from a collection's chunks, whole or as server-sent events."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import anyio
from fastapi import APIRouter
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.api.deps import SessionDep, SettingsDep
from app.api.schemas import ErrorResponse
from app.api.timeouts import statement_kind
from app.auth.principal import Role
from app.auth.rules import needs
from app.errors import AppError
from app.rag import service
from app.rag.schemas import AnswerRequest, AnswerResponse

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/collections/{name}",
    tags=["answers"],
    dependencies=[needs(Role.read, collection="name"), statement_kind("search")],
)

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStream(StreamingResponse):
    """Server-sent events from a blocking generator, read in the thread pool. Whatever ends the response (the
    last event, an error, the client going away) closes the generator, and with it the request to the model."""

    def __init__(self, frames: Generator[bytes, None, None]) -> None:
        self._frames = frames
        super().__init__(_in_threads(frames), media_type="text/event-stream", headers=_SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Starlette cancels the body when the client disconnects; a cancelled read of the thread pool still
            # waits for its thread, so the generator is not running here and can be closed.
            self._frames.close()


@router.post(
    "/answer",
    response_model=AnswerResponse,
    responses={
        200: {
            "description": "The answer; with `stream: true`, server-sent events `sources`, `delta`..., then `done` "
            "(or `error`).",
            "content": {"text/event-stream": {}},
        },
        404: {"model": ErrorResponse, "description": "No such collection."},
        502: {"model": ErrorResponse, "description": "The chat model's server (or the embedding model) failed."},
        413: {"model": ErrorResponse, "description": "The body is over MEMORA_MAX_JSON_BODY_BYTES."},
        504: {
            "model": ErrorResponse,
            "description": "The chat model's server did not answer in time (upstream_timeout), or retrieving the "
            "sources ran past MEMORA_SEARCH_STATEMENT_TIMEOUT_MS (statement_timeout).",
        },
    },
)
def answer(name: str, body: AnswerRequest, db: SessionDep, settings: SettingsDep) -> AnswerResponse | EventStream:
    """Answer a question from the collection's chunks: hybrid search, the best chunks packed into the prompt by
    tokens and numbered, a chat model told to answer only from them and cite them as [n].

    Without a chunk above `min_score`, the answer is null with reason `no_relevant_sources`, and no model is asked.
    With `stream: true`, errors before the first event are HTTP errors as usual; later ones arrive as an `error`
    event, which ends the stream.
    """
    if not body.stream:
        return service.answer(db, settings, name, body)
    prepared = service.prepare(db, settings, name, body)
    stream = service.open_stream(settings, prepared)
    return EventStream(_frames(service.events(prepared, stream)))


def frame(event: str, data: Any) -> bytes:
    """One server-sent event; the JSON has no line breaks, so one data line holds it."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _frames(events: Generator[service.Event, None, None]) -> Generator[bytes, None, None]:
    """EVENTS as SSE frames; a failure becomes an `error` event, the last one."""
    with contextlib.closing(events):
        try:
            for event, data in events:
                yield frame(event, data)
        except AppError as exc:
            log.warning("answer stream failed: %s", exc.message)
            yield frame("error", exc.to_dict())
        except Exception:
            log.exception("answer stream failed")
            yield frame("error", AppError("internal error while answering").to_dict())


async def _in_threads(frames: Iterator[bytes]) -> AsyncIterator[bytes]:
    while (chunk := await anyio.to_thread.run_sync(next, frames, None)) is not None:
        yield chunk
