"""GET /v1/audit: the trail of writes and deletes, newest first, for admins granted everything."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import SessionDep
from app.audit import service
from app.audit.repository import Filters
from app.audit.schemas import AuditEventOut, AuditPage
from app.auth.principal import Role
from app.auth.rules import needs

router = APIRouter(prefix="/v1/audit", tags=["audit"], dependencies=[needs(Role.admin, unrestricted=True)])


@router.get("", response_model=AuditPage)
def list_events(
    db: SessionDep,
    key: Annotated[str | None, Query(max_length=128, description="Only events of the key with this name.")] = None,
    collection: Annotated[str | None, Query(max_length=128, description="Only events on this collection.")] = None,
    dataset: Annotated[str | None, Query(max_length=128, description="Only events on this dataset.")] = None,
    since: Annotated[
        str | None,
        Query(max_length=64, description="Only events from this time on: 30m, 12h, 1d, 2w back, or ISO 8601."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
) -> AuditPage:
    """Events newest first, a page at a time (keyset pagination)."""
    filters = Filters(
        key=key,
        collection=collection,
        dataset=dataset,
        since=service.parse_since(since) if since is not None else None,
    )
    rows, next_cursor = service.page(db, filters, limit=limit, cursor=cursor)
    return AuditPage(items=[AuditEventOut.model_validate(row) for row in rows], next_cursor=next_cursor)
