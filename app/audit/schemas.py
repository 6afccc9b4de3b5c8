"""Response bodies of GET /v1/audit and `memora audit --json`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    key_name: str | None = Field(description="The key the request used; null for a request without a key (open mode).")
    key_id: int | None
    method: str
    route: str = Field(description="The route's template, such as /v1/collections/{name}/documents.")
    path: str
    collection: str | None = Field(description="The collection the route's path named, if any.")
    dataset: str | None = Field(description="The dataset the route's path named, if any.")
    status: int = Field(description="The HTTP status of the answer: refused writes (401, 403, 404, 4xx) are kept.")
    request_id: str | None


class AuditPage(BaseModel):
    items: list[AuditEventOut] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as cursor for the next (older) page; null on the last page.")
