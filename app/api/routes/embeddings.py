"""/v1/collections/{name}/embeddings: versions of a collection's vectors (app/versions/)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.deps import SessionDep, SettingsDep
from app.auth.principal import Role
from app.auth.rules import needs
from app.versions import service
from app.versions.schemas import Activation, VersionCreate, VersionOut, VersionUpdate

router = APIRouter(prefix="/v1/collections/{name}/embeddings", tags=["embeddings"])
ADMIN = [needs(Role.admin, collection="name")]
READ = [needs(Role.read, collection="name")]
Number = Annotated[int, Path(ge=1, le=2**31 - 1, description="The version's number.")]


@router.get("", response_model=list[VersionOut], dependencies=READ)
def list_versions(name: str, db: SessionDep) -> list[VersionOut]:
    """The versions of the collection's vectors, each with how far the worker has filled it."""
    return service.versions(db, name)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=VersionOut, dependencies=ADMIN)
def create_version(name: str, body: VersionCreate, db: SessionDep, settings: SettingsDep) -> VersionOut:
    """Add a version (another model, size, metric, storage or index); the worker fills it while searches go on
    reading the active one."""
    return service.create(db, settings, name, body)


@router.get("/{number}", response_model=VersionOut, dependencies=READ)
def get_version(name: str, number: Number, db: SessionDep) -> VersionOut:
    return service.version(db, name, number)


@router.post("/{number}/activate", response_model=VersionOut, dependencies=ADMIN)
def activate_version(name: str, number: Number, db: SessionDep, body: Activation | None = None) -> VersionOut:
    """Make the version the one searches read, at once; 409 while chunks lack its vectors (unless forced)."""
    return service.activate(db, name, number, force=body is not None and body.force)


@router.patch("/{number}", response_model=VersionOut, dependencies=ADMIN)
def update_version(name: str, number: Number, body: VersionUpdate, db: SessionDep) -> VersionOut:
    """`{"status": "building"}` sets a failed version building again, once what failed it (a key, a model) is
    fixed; the worker goes on from where it stopped."""
    return service.retry(db, name, number)


@router.delete("/{number}", status_code=status.HTTP_204_NO_CONTENT, dependencies=ADMIN)
def drop_version(name: str, number: Number, db: SessionDep) -> Response:
    """Drop the version with its vectors and index (not the active one)."""
    service.drop(db, name, number)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
