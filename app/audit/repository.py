"""The queries of the audit trail: record an event, forget old ones, read a page newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.db.models import AuditEvent


@dataclass(frozen=True)
class Filters:
    """What `GET /v1/audit` and `memora audit` narrow the trail to; None: no narrowing."""

    key: str | None = None
    collection: str | None = None
    dataset: str | None = None
    since: datetime | None = None


def record(db: Session, **fields: object) -> None:
    db.add(AuditEvent(**fields))
    db.flush()


def purge(db: Session, retention: timedelta) -> int:
    """Delete the events older than RETENTION; how many went."""
    result = db.execute(delete(AuditEvent).where(AuditEvent.at < func.now() - retention))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def page(db: Session, filters: Filters, *, limit: int, before: int | None = None) -> list[AuditEvent]:
    """Up to LIMIT events matching FILTERS, newest first (by id), older than event BEFORE when given."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    if filters.key is not None:
        query = query.where(AuditEvent.key_name == filters.key)
    if filters.collection is not None:
        query = query.where(AuditEvent.collection == filters.collection)
    if filters.dataset is not None:
        query = query.where(AuditEvent.dataset == filters.dataset)
    if filters.since is not None:
        query = query.where(AuditEvent.at >= filters.since)
    return list(db.scalars(query))
