"""Request and response bodies of snapshots."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.collections.schemas import NAME_PATTERN
from app.db.storable import StorableText
from app.limits import MAX_DESCRIPTION_CHARS


class SnapshotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Letters, digits, '_', '.', '-'; at most 128 characters.")
    description: StorableText = Field(default="", max_length=MAX_DESCRIPTION_CHARS)


class SnapshotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    description: str
    examples: int = Field(description="Examples frozen in the snapshot.")
    split_counts: dict[str, int] = Field(description="Examples per split at freezing time.")
    created_at: datetime
