"""/v1/collections/{name}/embeddings: versions of a collection's vectors (app/versions/)."""

from __future__ import annotations

import tempfile
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from app.api.bodies import spool_body
from app.api.deps import SessionDep, SettingsDep
from app.api.reads import ReadSessionDep
from app.api.timeouts import statement_kind
from app.auth.principal import Role
from app.auth.rules import needs
from app.versions import imports, service
from app.versions.schemas import Activation, TrainRequest, VersionCreate, VersionOut, VersionUpdate

router = APIRouter(prefix="/v1/collections/{name}/embeddings", tags=["embeddings"])
ADMIN = [needs(Role.admin, collection="name")]
READ = [needs(Role.read, collection="name")]
Number = Annotated[int, Path(ge=1, le=2**31 - 1, description="The version's number.")]
_VECTORS_BODY = {
    "required": True,
    "content": {
        "application/x-ndjson": {
            "schema": {
                "type": "string",
                "description": 'JSON Lines: {"chunk_id": 812, "embedding": [...]} or '
                '{"external_id": "manual-7", "ordinal": 0, "embedding": [...]} a line',
            }
        }
    },
}


@router.get("", response_model=list[VersionOut], dependencies=READ)
def list_versions(name: str, db: ReadSessionDep) -> list[VersionOut]:
    """The versions of the collection's vectors, each with how far the worker has filled it."""
    return service.versions(db, name)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=VersionOut, dependencies=ADMIN)
def create_version(name: str, body: VersionCreate, db: SessionDep, settings: SettingsDep) -> VersionOut:
    """Add a version (another model, size, metric, storage or index); the worker fills it while searches go on
    reading the active one."""
    return service.create(db, settings, name, body)


@router.post("/train", status_code=status.HTTP_202_ACCEPTED, response_model=VersionOut, dependencies=ADMIN)
def train_adapter(name: str, body: TrainRequest, db: SessionDep) -> VersionOut:
    """Train a query adapter on a dataset's judged pairs, as a new version (status training): the worker trains it,
    evaluated on two held-out splits (by query, and by document), then copies the base's vectors into it. Its
    `adapter` field holds the report; activating it is your choice. 422 (field pairs) for too few pairs or documents
    the collection lacks."""
    return service.request_training(db, name, body)


@router.get("/{number}", response_model=VersionOut, dependencies=READ)
def get_version(name: str, number: Number, db: ReadSessionDep) -> VersionOut:
    return service.version(db, name, number)


@router.post("/{number}/activate", response_model=VersionOut, dependencies=ADMIN)
def activate_version(name: str, number: Number, db: SessionDep, body: Activation | None = None) -> VersionOut:
    """Make the version the one searches read, at once; 409 while chunks lack its vectors (unless forced)."""
    return service.activate(db, name, number, force=body is not None and body.force)


@router.patch("/{number}", response_model=VersionOut, dependencies=ADMIN)
def update_version(name: str, number: Number, body: VersionUpdate, db: SessionDep) -> VersionOut:
    """`{"status": "building"}` sets a failed version building again, once what failed it (a key, a model) is
    fixed; the worker goes on from where it stopped. `{"source": "worker"}` hands a version made for imports to the
    worker, which embeds the chunks it lacks; `{"source": "import"}` the other way."""
    return service.update_version(db, name, number, body)


@router.post(
    "/{number}/vectors",
    response_model=imports.VectorImport,
    openapi_extra={"requestBody": _VECTORS_BODY},
    dependencies=[*ADMIN, statement_kind("import")],
)
async def import_vectors(
    name: str, number: Number, request: Request, db: SessionDep, settings: SettingsDep
) -> imports.VectorImport:
    """Bring your own vectors into the version, a chunk a line (JSON Lines; a chunk named by chunk_id, or by its
    document's external_id and its ordinal). The file is streamed to disk, checked line by line and written with
    one COPY; any bad line refuses the whole file (422, by line) and nothing is written."""
    with tempfile.TemporaryFile() as spool:
        await spool_body(request, spool, settings.max_import_bytes, "MEMORA_MAX_IMPORT_BYTES")
        spool.seek(0)
        return await run_in_threadpool(imports.import_vectors, db, name, number, spool)


@router.delete("/{number}", status_code=status.HTTP_204_NO_CONTENT, dependencies=ADMIN)
def drop_version(name: str, number: Number, db: SessionDep) -> Response:
    """Drop the version with its vectors and index (not the active one)."""
    service.drop(db, name, number)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
