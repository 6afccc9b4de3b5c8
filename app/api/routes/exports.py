"""/v1/datasets/{name}/export: a dataset or snapshot as a training file, streamed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from app.api.deps import SettingsDep
from app.api.reads import StreamReadSessionDep
from app.api.timeouts import statement_kind
from app.auth.principal import Role, current
from app.auth.rules import needs
from app.training.exports import service as export
from app.training.exports.schemas import Options

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], dependencies=[statement_kind("export")])


@router.get(
    "/{name}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file; X-Memora-Examples says how many examples it holds.",
            "content": {"application/jsonl": {}, "application/vnd.apache.parquet": {}, "text/csv": {}},
        },
        404: {"description": "No such dataset, snapshot or collection."},
    },
    dependencies=[needs(Role.read, dataset="name")],
)
def export_dataset(
    name: str,
    request: Request,
    db: StreamReadSessionDep,  # lives until the response is sent, so the stream reads through it
    settings: SettingsDep,
    format: Annotated[str | None, Query(description=f"One of {', '.join(export.EXPORT_FORMATS)}.")] = None,
    split: Annotated[str | None, Query(description="Only this split: train, validation or test.")] = None,
    snapshot: Annotated[
        str | None, Query(max_length=200, description="Export this snapshot, not the live dataset.")
    ] = None,
    negatives: Annotated[int, Query(description="triplets: hard negatives to mine per example.")] = 0,
    collection: Annotated[str | None, Query(max_length=200, description="triplets: the collection to mine.")] = None,
    kind: Annotated[str, Query(description="openai-batch: chat or embeddings requests.")] = "chat",
    model: Annotated[str | None, Query(max_length=200, description="openai-batch: the model of every request.")] = None,
) -> StreamingResponse:
    """Stream the examples as openai-chat, jsonl, parquet, csv, pairs, triplets or openai-batch; every parameter
    is checked before the first byte, so a bad one is a 404 or 422, never a broken file."""
    options = Options(format, split, snapshot, negatives, collection, kind, model)
    job = export.prepare(db, name, options, current(request))
    headers = {"Content-Disposition": f'attachment; filename="{job.filename}"', "X-Memora-Examples": str(job.total)}
    return StreamingResponse(job.chunks(db, settings), media_type=job.media_type, headers=headers)
