"""The status summary: the queue overall and per collection, failures and their last errors, leases, workers, and
whether the database answers. GET /v1/status and `memora status` both show it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from app.observe.schemas import (
    CollectionQueue,
    Failures,
    LastError,
    Leases,
    QueueCounts,
    Status,
    StatusDatabase,
    Workers,
    WorkerSeen,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.observe.repository import QueueRow

DEFAULT_ERRORS = 10
MAX_ERRORS = 100


def read(engine: Engine, errors: int = DEFAULT_ERRORS, sees: Callable[[str], bool] | None = None) -> Status:
    """The summary with the ERRORS most recent errors, read in one repeatable-read transaction so its numbers
    agree with each other; a Status saying 'unavailable' with the reason when the database does not answer.
    SEES: the collections an API key is granted; the queue, failures and leases then count theirs alone (the
    workers stay whole: they serve every collection)."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.observe import repository

    try:
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            at = repository.now(conn)
            rows = repository.queue(conn)
            within = None
            if sees is not None:
                rows = [row for row in rows if sees(row.collection)]
                within = [row.collection_id for row in rows]  # a collection without documents has no errors
            last = repository.last_errors(conn, errors, within)
            holders = repository.leases_by_worker(conn)
            connected = repository.workers_connected(conn)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip()
        return Status(status="unavailable", database=StatusDatabase(reachable=False, error=reason))
    per_collection: dict[str, CollectionQueue] = {}
    for row in rows:
        entry = per_collection.setdefault(row.collection, CollectionQueue(collection=row.collection))
        setattr(entry, row.status, row.documents)
        if row.oldest_pending_seconds is not None:
            entry.oldest_pending_seconds = row.oldest_pending_seconds
    return Status(
        status="ok",
        database=StatusDatabase(reachable=True),
        at=at,
        queue=_total(rows),
        collections=list(per_collection.values()),
        failures=Failures(
            failed=sum(row.documents for row in rows if row.status == "failed"),
            retrying=sum(row.with_error for row in rows if row.status == "pending"),
            last=[LastError.model_validate(row._mapping) for row in last],
        ),
        leases=Leases(held=sum(r.leases_held for r in rows), expired=sum(r.leases_expired for r in rows)),
        workers=Workers(
            connected=connected,
            holding=[WorkerSeen.model_validate(row._mapping) for row in holders],
        ),
    )


def _total(rows: list[QueueRow]) -> QueueCounts:
    total = QueueCounts()
    for row in rows:
        setattr(total, row.status, getattr(total, row.status) + row.documents)
    waits = [row.oldest_pending_seconds for row in rows if row.oldest_pending_seconds is not None]
    total.oldest_pending_seconds = max(waits) if waits else None
    return total
