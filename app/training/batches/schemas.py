"""Response bodies of batches."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Epoch(BaseModel):
    seed: int | None = Field(description="The shuffle seed; null: seq order.")
    examples: int = Field(
        description="Size of the epoch's seq range: a snapshot's examples, or the dataset's next_seq when the epoch "
        "began (deleted examples and other splits included)."
    )


class Batch(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = Field(description="The next batch's cursor; null after the epoch's last batch.")
    epoch: Epoch
