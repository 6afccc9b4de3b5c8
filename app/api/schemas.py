"""Bodies every route shares: the error body, and the health check's."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    code: str = Field(examples=["invalid_input"])
    message: str
    details: object | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class DatabaseHealth(BaseModel):
    reachable: bool
    embedded: bool = Field(description="True when Memora runs its own PostgreSQL server.")
    address: str | None = Field(
        default=None,
        description="host:port of the server this check reached (the embedded server's port may change at a restart).",
        examples=["127.0.0.1:5432"],
    )
    server_version: str | None = Field(default=None, examples=["18.6"])
    pgvector_version: str | None = Field(default=None, examples=["0.8.6"])
    revision: str | None = Field(default=None, description="Migration revision the database is at.")
    head: str | None = Field(default=None, description="Newest migration revision this Memora knows.")
    error: str | None = None


class ReplicaHealthOut(BaseModel):
    """One read replica (MEMORA_READ_DATABASE_URLS) as the last check found it."""

    name: str = Field(description="host:port", examples=["127.0.0.1:5433"])
    state: Literal["ok", "lagging", "down", "not_a_replica", "unchecked"] = Field(
        description="`ok`: it serves reads; `lagging`: further behind than MEMORA_MAX_REPLICA_LAG; `down`: not "
        "reached; `not_a_replica`: not a streaming replica of this primary. Reads skip all but `ok` ones."
    )
    lag_seconds: float | None = Field(
        default=None, description="How long it has lacked WAL the primary had written (0: caught up)."
    )
    lag_bytes: int | None = Field(default=None, description="WAL bytes between the primary's end and its replay.")
    replayed: str | None = Field(default=None, description="WAL position it has replayed.", examples=["0/3000148"])
    error: str | None = None


class Health(BaseModel):
    """The health check. Where API keys are required, a caller without one gets `status` alone (docs/security.md)."""

    status: Literal["ok", "unavailable", "migrations_pending"]
    version: str | None = Field(default=None, description="Memora's version; absent for a caller without a key.")
    database: DatabaseHealth | None = Field(default=None, description="Absent for a caller without a key.")
    replicas: list[ReplicaHealthOut] | None = Field(
        default=None, description="The read replicas, where there are (docs/scaling.md); absent without a key."
    )
