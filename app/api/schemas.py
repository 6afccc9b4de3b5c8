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


class Health(BaseModel):
    """The health check. Where API keys are required, a caller without one gets `status` alone (docs/security.md)."""

    status: Literal["ok", "unavailable", "migrations_pending"]
    version: str | None = Field(default=None, description="Memora's version; absent for a caller without a key.")
    database: DatabaseHealth | None = Field(default=None, description="Absent for a caller without a key.")
