"""Reading the audit trail, shared by GET /v1/audit and `memora audit`: filters checked, pages newest first."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app import cursors
from app.audit import repository
from app.audit.repository import Filters
from app.db.models import AuditEvent
from app.errors import InvalidInputError


def parse_since(text: str, field: str = "since", now: datetime | None = None) -> datetime:
    """SINCE as a time: a duration back from now ("1d", "12h", "30m", "2w") or an ISO 8601 time (UTC if no zone)."""
    from app.auth.keys import parse_duration

    text = text.strip()
    if text[-1:] in {"m", "h", "d", "w"} and text[:-1].isdigit():
        try:
            return (now or datetime.now(UTC)) - parse_duration(text)
        except (ValueError, OverflowError) as exc:
            raise InvalidInputError.for_field(field, str(exc)) from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        reason = "a duration back from now (30m, 12h, 1d, 2w) or an ISO 8601 time (2026-12-01T09:00:00Z)"
        raise InvalidInputError.for_field(field, f"{text!r} is neither {reason}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def page(
    db: Session, filters: Filters, *, limit: int, cursor: str | None = None
) -> tuple[list[AuditEvent], str | None]:
    """One page of events newest first, and the cursor of the next (older) page."""
    before = cursors.decode(cursor, least=1) if cursor is not None else None
    rows = repository.page(db, filters, limit=limit + 1, before=before)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, cursors.encode(rows[-1].id) if more else None
