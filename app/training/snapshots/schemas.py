"""Request and response bodies of snapshots."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from app.collections.schemas import NAME_PATTERN
from app.db.storable import StorableText
from app.limits import MAX_DESCRIPTION_CHARS
from app.training.datasets.schemas import Format, SplitName


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


Change = Literal["added", "removed", "split_changed"]
CHANGES: tuple[Change, ...] = get_args(Change)


class ChangedExample(BaseModel):
    """An example that one snapshot holds and the other not, or that the two hold in different splits."""

    example_id: int
    change: Change = Field(description="added (only in the snapshot), removed (only in `against`), split_changed.")
    split_before: SplitName | None = Field(description="Its split in `against` (null: not there, or no split).")
    split_after: SplitName | None = Field(description="Its split in the snapshot (null: not there, or no split).")
    seq: int
    format: Format
    label: str | None
    labels: list[str] | None
    text: str | None = Field(
        description="The start of its text (chat: what the user and the assistant say); the whole example is at "
        "GET .../examples/{example_id} of a snapshot that holds it."
    )
    live: bool = Field(description="Still in the live dataset; false once deleted (a tombstone snapshots still read).")


class SnapshotDiff(BaseModel):
    snapshot: str
    against: str
    counts: dict[Change, int] = Field(description="Every change between the two, whatever the page and `change`.")
    items: list[ChangedExample] = Field(description="In example id order.")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page.")
