"""Request and response bodies of splits, duplicates and leakage."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.collections.schemas import Provider
from app.db.models import MAX_INDEXED_DIMENSIONS
from app.limits import BIGINT_MAX
from app.training.datasets.schemas import SplitName, SplitRule


class LabelSplits(BaseModel):
    label: str | None = Field(
        description="The label (a multi-label example's first label in sorted order); null: none."
    )
    train: int
    validation: int
    test: int


class SplitReport(BaseModel):
    """What a split did: the rule now stored, how many examples moved, and the counts it left."""

    rule: SplitRule
    examples: int = Field(description="Live examples.")
    changed: int = Field(description="Live examples whose split changed.")
    counts: dict[SplitName, int] = Field(description="Live examples per split.")
    by_label: list[LabelSplits] | None = Field(description="Live examples per label and split (stratified only).")


class EmbeddingChoice(BaseModel):
    """The embedding model near duplicates are measured with."""

    model_config = ConfigDict(extra="forbid")

    provider: Provider = Field(default="local", description="local (MiniLM, 384-d), openai or hashing.")
    model: str | None = Field(default=None, max_length=200, description="Default: the provider's.")
    dimensions: int | None = Field(
        default=None, ge=1, le=MAX_INDEXED_DIMENSIONS["vector"], description="Default: the model's."
    )


class NearRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=0.95, gt=0, le=1, allow_inf_nan=False, description="Least cosine similarity.")
    k: int = Field(default=10, ge=1, le=100, description="Neighbours each example asks the index for.")


class DedupRequest(EmbeddingChoice):
    exact: bool = Field(default=True, description="Report examples with the same normalised text (text_hash).")
    near: NearRule | None = Field(default=None, description="Also report near duplicates; null: exact only.")
    drop: bool = Field(default=False, description="Remove all but the first (lowest seq) of every cluster.")
    limit: int = Field(default=1000, ge=0, le=100_000, description="Most clusters listed; counts cover all.")


class Cluster(BaseModel):
    kind: Literal["exact", "near"]
    keep: int = Field(description="The example kept: the cluster's lowest seq.")
    members: list[int] = Field(description="Example ids in seq order, keep first.")
    max_similarity: float
    min_similarity: float = Field(description="Least similarity of the pairs that joined the cluster.")


class DedupReport(BaseModel):
    clusters: list[Cluster] = Field(description="Exact clusters first, each kind in order of its first example.")
    counts: dict[str, int] = Field(
        description="exact_clusters, near_clusters, duplicates (members beyond the kept ones), embedded, "
        "dropped = tombstoned (held by a snapshot) + deleted."
    )
    embedding: EmbeddingChoice | None


class LeakPair(BaseModel):
    train_id: int
    other_id: int
    other_split: Literal["validation", "test"]
    similarity: float
    exact: bool = Field(description="Same normalised text and labels (text_hash).")


class LeakageReport(BaseModel):
    threshold: float
    k: int
    checked: int = Field(description="Live validation and test examples compared with the train split.")
    pairs: list[LeakPair] = Field(description="Most similar first.")
    counts: dict[str, int] = Field(description="pairs, exact, near, train_validation, train_test, embedded.")
    embedding: EmbeddingChoice


# Most ids in each list of a resolve request.
MAX_RESOLVE_IDS = 10_000
ExampleIdIn = Annotated[int, Field(ge=-BIGINT_MAX - 1, le=BIGINT_MAX)]


class ResolveRequest(BaseModel):
    """One duplicate cluster settled by hand: which of its examples stay and which leave the live dataset."""

    model_config = ConfigDict(extra="forbid")

    keep: list[ExampleIdIn] = Field(
        max_length=MAX_RESOLVE_IDS,
        description="Live examples that stay: at least one, so a cluster never leaves the dataset whole.",
    )
    drop: list[ExampleIdIn] = Field(
        min_length=1,
        max_length=MAX_RESOLVE_IDS,
        description="Live examples to remove; snapshots that hold them still read them (tombstones).",
    )


class Resolved(BaseModel):
    kept: list[int]
    dropped: list[int] = Field(description="The examples removed from the live dataset, in the order given.")
    tombstoned: int = Field(description="Of those, how many a snapshot holds (kept as tombstones).")
    deleted: int = Field(description="Of those, how many no snapshot held (deleted).")
