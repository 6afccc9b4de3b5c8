"""/v1/collections: create, list, read, change and delete collections."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.deps import SessionDep, SettingsDep
from app.api.reads import ReadSessionDep
from app.audit import recorder as audit
from app.auth.access import check_new_collection
from app.auth.principal import Role, current
from app.auth.rules import needs
from app.collections import service
from app.collections.schemas import CollectionCreate, CollectionOut, CollectionUpdate
from app.db.models import Collection
from app.db.repository import all_named
from app.errors import InvalidInputError

router = APIRouter(prefix="/v1/collections", tags=["collections"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CollectionOut, dependencies=[needs(Role.admin)])
def create_collection(body: CollectionCreate, db: SessionDep, request: Request) -> CollectionOut:
    """Create a collection; its vector partition and HNSW index are created with it."""
    audit.names(request, collection=body.name)  # first, so a refused create is recorded with the name it asked for
    check_new_collection(current(request), body.name)
    _check_feedback_dataset(request, body.feedback_dataset)
    return service.to_out(service.create(db, body), {})


@router.get("", response_model=list[CollectionOut], dependencies=[needs(Role.read)])
def list_collections(db: ReadSessionDep, request: Request) -> list[CollectionOut]:
    """The collections the key is granted."""
    principal = current(request)
    return service.describe(db, [row for row in all_named(db, Collection) if principal.sees_collection(row.name)])


@router.get("/{name}", response_model=CollectionOut, dependencies=[needs(Role.read, collection="name")])
def get_collection(name: str, db: ReadSessionDep) -> CollectionOut:
    return service.describe(db, [service.get(db, name)])[0]


@router.patch("/{name}", response_model=CollectionOut, dependencies=[needs(Role.admin, collection="name")])
def update_collection(
    name: str, body: CollectionUpdate, db: SessionDep, settings: SettingsDep, request: Request
) -> CollectionOut:
    """Change a collection. A new model, size, metric, storage or index makes a new embedding version: the worker
    fills it while searches read the current one, and it becomes active once filled (GET .../embeddings follows
    it). New chunking re-chunks every document."""
    _check_feedback_dataset(request, body.feedback_dataset)
    return service.describe(db, [service.update(db, settings, name, body)])[0]


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[needs(Role.admin, collection="name")])
def delete_collection(name: str, db: SessionDep) -> Response:
    """Delete a collection with its documents, chunks and vectors."""
    service.delete(db, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _check_feedback_dataset(request: Request, name: str | None) -> None:
    """A key sends feedback only to a dataset it is granted: one it may not see is answered as one that is not there."""
    if name is not None and not current(request).sees_dataset(name):
        raise InvalidInputError.for_field("feedback_dataset", f"no dataset named {name!r}")
