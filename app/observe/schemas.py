"""The body of GET /v1/status (and `memora status --json`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class QueueCounts(BaseModel):
    pending: int = 0
    processing: int = 0
    ready: int = 0
    failed: int = 0
    oldest_pending_seconds: float | None = Field(
        default=None,
        description="How long the pending document that has waited longest has waited since it was queued, edited "
        "or given back for a retry; null with none pending.",
    )


class CollectionQueue(QueueCounts):
    collection: str


class LastError(BaseModel):
    document_id: int
    external_id: str
    collection: str
    status: Literal["pending", "failed"] = Field(description="pending: a retry is scheduled; failed: for good.")
    attempts: int
    at: datetime = Field(description="When the document was last changed, which for these is when it failed.")
    error: str
    request_id: str | None = Field(default=None, description="X-Request-ID of the request that last changed it.")


class Failures(BaseModel):
    failed: int = Field(description="Documents failed for good.")
    retrying: int = Field(description="Pending documents with an error from their last attempt.")
    last: list[LastError] = Field(description="The most recent errors, newest first.")


class Leases(BaseModel):
    held: int = Field(description="Documents a worker holds with its lease running.")
    expired: int = Field(description="Documents whose worker's lease ran out: the next claim takes them over.")


class WorkerSeen(BaseModel):
    name: str = Field(description="The worker's name (host:pid:random), its leased_by.")
    documents: int
    expired: int
    lease_until: datetime = Field(description="When the latest of its leases runs out unless renewed.")


class Workers(BaseModel):
    connected: int = Field(description="Database connections of workers (memora-worker*) in pg_stat_activity.")
    holding: list[WorkerSeen] = Field(description="Workers that hold documents now (leased_by).")


class StatusDatabase(BaseModel):
    reachable: bool
    error: str | None = None


class Status(BaseModel):
    status: Literal["ok", "unavailable"]
    database: StatusDatabase
    at: datetime | None = Field(default=None, description="The database's clock when the figures were read.")
    queue: QueueCounts | None = Field(default=None, description="Documents by status, all collections together.")
    collections: list[CollectionQueue] = Field(default_factory=list, description="The same per collection.")
    failures: Failures | None = None
    leases: Leases | None = None
    workers: Workers | None = None
