"""/v1/collections: create, list, read, change and delete collections."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.deps import SessionDep
from app.audit import recorder as audit
from app.auth.principal import Role
from app.auth.rules import needs
from app.collections import service
from app.collections.schemas import CollectionCreate, CollectionOut, CollectionUpdate
from app.db.models import Collection
from app.db.repository import all_named

router = APIRouter(prefix="/v1/collections", tags=["collections"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CollectionOut, dependencies=[needs(Role.admin)])
def create_collection(body: CollectionCreate, db: SessionDep, request: Request) -> CollectionOut:
    """Create a collection; its vector partition and HNSW index are created with it."""
    audit.names(request, collection=body.name)
    return service.to_out(service.create(db, body), {})


@router.get("", response_model=list[CollectionOut], dependencies=[needs(Role.read)])
def list_collections(db: SessionDep) -> list[CollectionOut]:
    return service.describe(db, all_named(db, Collection))


@router.get("/{name}", response_model=CollectionOut, dependencies=[needs(Role.read, collection="name")])
def get_collection(name: str, db: SessionDep) -> CollectionOut:
    return service.describe(db, [service.get(db, name)])[0]


@router.patch("/{name}", response_model=CollectionOut, dependencies=[needs(Role.admin, collection="name")])
def update_collection(name: str, body: CollectionUpdate, db: SessionDep) -> CollectionOut:
    """Change a collection. A new embedding model re-embeds every document; new chunking re-chunks them."""
    return service.describe(db, [service.update(db, name, body)])[0]


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[needs(Role.admin, collection="name")])
def delete_collection(name: str, db: SessionDep) -> Response:
    """Delete a collection with its documents, chunks and vectors."""
    service.delete(db, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
