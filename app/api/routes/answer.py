"""/v1/collections/{name}/answer: a chat model's answer from a collection's chunks, whole or as server-sent events."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import SettingsDep
from app.api.events import EventStream, frames
from app.api.reads import ReadsDep
from app.api.schemas import ErrorResponse
from app.api.timeouts import statement_kind
from app.auth.principal import Role
from app.auth.rules import needs
from app.rag import service
from app.rag.schemas import AnswerRequest, AnswerResponse

router = APIRouter(
    prefix="/v1/collections/{name}",
    tags=["answers"],
    dependencies=[needs(Role.read, collection="name"), statement_kind("search")],
)


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
def answer(name: str, body: AnswerRequest, reads: ReadsDep, settings: SettingsDep) -> AnswerResponse | EventStream:
    """Answer a question from the collection's chunks: hybrid search, the best chunks packed into the prompt by
    tokens and numbered, a chat model told to answer only from them and cite them as [n].

    Without a chunk above `min_score`, the answer is null with reason `no_relevant_sources`, and no model is asked.
    With `stream: true`, errors before the first event are HTTP errors as usual; later ones arrive as an `error`
    event, which ends the stream.
    """
    db = reads.session(after=body.consistency.after if body.consistency else None)
    if not body.stream:
        return service.answer(db, settings, name, body)
    prepared = service.prepare(db, settings, name, body)
    stream = service.open_stream(settings, prepared)
    return EventStream(frames(service.events(prepared, stream)))
