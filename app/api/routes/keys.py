"""/v1/keys: API keys made, listed and revoked over REST, by an admin key granted everything (`memora key` does the
same from a shell). A key's secret is in the answer that makes it and nowhere else."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.exc import IntegrityError

from app.api.deps import SessionDep, SettingsDep
from app.api.schemas import ErrorResponse
from app.auth import keys
from app.auth.principal import Role
from app.auth.rules import needs
from app.auth.schemas import KeyCreate, KeyCreated, KeyOut
from app.db.models import ApiKey
from app.db.repository import missing
from app.errors import ConflictError, InvalidInputError

router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=[needs(Role.admin, unrestricted=True)])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses={409: {"model": ErrorResponse, "description": "A live key has this name."}},
)
def create_key(body: KeyCreate, db: SessionDep, settings: SettingsDep, response: Response) -> KeyCreated:
    """Make a key; the answer holds the key itself (`key`), which is never shown again."""
    expires_in = _duration(body.expires)
    taken = ConflictError(
        f"a key named {body.name!r} exists already (revoke it first)",
        details=[{"field": "body.name", "reason": "is taken"}],
    )
    if keys.live(db, body.name) is not None:
        raise taken
    try:
        with db.begin_nested():  # a key of the same name made meanwhile: a 409, not a 500
            new = keys.create(
                db, settings, body.name, Role[body.role], collections=body.collections, datasets=body.datasets,
                expires_in=expires_in, rate_limit=body.rate_limit,
            )  # fmt: skip
    except IntegrityError as exc:
        if "uq_api_key_name_live" in str(exc.orig):
            raise taken from None
        raise
    db.refresh(new.row)
    response.headers["Cache-Control"] = "no-store"
    return KeyCreated(**KeyOut.of(new.row).model_dump(), key=new.secret)


@router.get("", response_model=list[KeyOut])
def list_keys(
    db: SessionDep, revoked: Annotated[bool, Query(description="Also list revoked keys.")] = False
) -> list[KeyOut]:
    """Every key, oldest first (expired ones too: their expires_at says so)."""
    return [KeyOut.of(row) for row in keys.all_keys(db, revoked=revoked)]


@router.get("/{name}", response_model=KeyOut, responses={404: {"model": ErrorResponse, "description": "No such key."}})
def get_key(name: str, db: SessionDep) -> KeyOut:
    """The live (unrevoked) key called NAME."""
    row = keys.live(db, name)
    if row is None:
        raise missing(ApiKey, name)
    return KeyOut.of(row)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ErrorResponse, "description": "No live key of this name."}},
)
def revoke_key(name: str, db: SessionDep) -> Response:
    """Revoke the key called NAME: its next request is a 401. The row stays, so the audit trail still names it."""
    if keys.revoke(db, name) is None:
        raise missing(ApiKey, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _duration(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return keys.parse_duration(text)
    except ValueError as exc:
        raise InvalidInputError.for_field("body.expires", str(exc)) from None
