"""Request and response bodies of datasets and their examples."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.collections.schemas import NAME_PATTERN
from app.db.storable import StorableObject, StorableText
from app.limits import MAX_DESCRIPTION_CHARS

Task = Literal["chat", "completion", "classification", "pairs", "triplets", "qa", "custom"]
Format = Task
SplitName = Literal["train", "validation", "test"]
SPLITS: tuple[SplitName, ...] = get_args(SplitName)

Ratio = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _default_ratios() -> dict[SplitName, float]:
    return {"train": 0.8, "validation": 0.1, "test": 0.1}


class SplitRule(BaseModel):
    """How examples are split: by a hash of their normalised text with this seed, in these proportions."""

    model_config = ConfigDict(extra="forbid")

    ratios: dict[SplitName, Ratio] = Field(
        default_factory=_default_ratios,
        description="Share of each split; they must add up to 1.",
    )
    seed: int = Field(default=0, ge=-(2**31), lt=2**31, description="Another seed gives another split.")
    stratified: bool = Field(
        default=False, description="Split each label apart, so every label has its share in every split."
    )

    @field_validator("ratios")
    @classmethod
    def _sum_to_one(cls, ratios: dict[str, float]) -> dict[str, float]:
        total = sum(ratios.values())
        if abs(total - 1) > 1e-6:
            raise ValueError(f"must add up to 1 (they add up to {total:g})")
        return ratios


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Letters, digits, '_', '.', '-'; at most 128 characters.")
    task: Task
    description: StorableText = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    metadata: StorableObject = Field(default_factory=dict)
    split: SplitRule = Field(default_factory=SplitRule)


class DatasetOut(BaseModel):
    name: str
    task: Task
    description: str
    metadata: dict[str, Any]
    split: SplitRule
    examples: int = Field(description="Live examples (tombstones of deleted ones not counted).")
    split_counts: dict[str, int]
    snapshots: int
    created_at: datetime
    updated_at: datetime


class ExampleOut(BaseModel):
    id: int
    seq: int
    format: Format
    split: SplitName | None
    record: dict[str, Any] = Field(description="The example in its format's JSON shape, as it was imported.")
    metadata: dict[str, Any]
    token_count: int | None
    source: dict[str, Any] | None = Field(description="The document or chunk it came from, if any.")
    created_at: datetime


class ExamplePage(BaseModel):
    items: list[ExampleOut]
    next_cursor: str | None


class LabelCount(BaseModel):
    label: str
    count: int
