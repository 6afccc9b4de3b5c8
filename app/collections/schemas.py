"""Request and response bodies for collections."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.db.storable import Real, StorableObject, StorableText
from app.limits import MAX_DESCRIPTION_CHARS

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
Provider = Literal["local", "openai", "hashing"]
Metric = Literal["cosine", "l2", "inner_product"]
Storage = Literal["vector", "halfvec"]


class Chunking(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Literal["recursive", "tokens", "markdown"] = "recursive"
    size: int = Field(default=200, ge=16, le=8192, description="Most tokens (of the embedding model) per chunk.")
    overlap: int = Field(default=32, ge=0, description="Tokens shared by neighbouring chunks.")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Chunking:
        if self.overlap >= self.size:
            raise ValueError("overlap must be smaller than size")
        return self


class Hnsw(BaseModel):
    model_config = ConfigDict(extra="forbid")

    m: int = Field(default=16, ge=2, le=100)
    ef_construction: int = Field(default=64, ge=4, le=1000)

    @model_validator(mode="after")
    def _ef_at_least_twice_m(self) -> Hnsw:
        if self.ef_construction < 2 * self.m:
            raise ValueError("ef_construction must be at least 2 * m")
        return self


# BM25 of text search: k1 saturates term frequency (0: a term counts once), b normalises by chunk length (0: none).
# Both are stored as PostgreSQL real, so a value that is not 0 must not underflow it (Real).
Bm25K1 = Annotated[
    float,
    Field(ge=0, le=10, allow_inf_nan=False, description="BM25 k1, term-frequency saturation: 0, or 1.2e-38 to 10."),
    Real,
]
Bm25B = Annotated[
    float, Field(ge=0, le=1, allow_inf_nan=False, description="BM25 b, length normalisation: 0, or 1.2e-38 to 1."), Real
]
Description = Annotated[StorableText, Field(max_length=MAX_DESCRIPTION_CHARS)]
Language = Annotated[StorableText, Field(min_length=1, max_length=63, description="A text search configuration.")]
ModelName = Annotated[StorableText, Field(min_length=1, max_length=200)]


FeedbackDataset = Annotated[
    str | None,
    Field(
        pattern=NAME_PATTERN,
        description="The dataset that search feedback (POST .../feedback) is kept in, as labeled pairs; null: none.",
    ),
]


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, examples=["handbook"])
    description: Description = ""
    embedding_provider: Provider = "local"
    embedding_model: ModelName | None = Field(default=None, description="Default: the provider's default model.")
    dimensions: int | None = Field(default=None, ge=1, le=4000, description="Default: the model's dimensions.")
    metric: Metric = "cosine"
    storage: Storage = "vector"
    chunking: Chunking = Field(default_factory=Chunking)
    language: Language = "english"
    hnsw: Hnsw = Field(default_factory=Hnsw)
    bm25_k1: Bm25K1 = 0.9
    bm25_b: Bm25B = 0.4
    metadata: StorableObject = Field(default_factory=dict)
    feedback_dataset: FeedbackDataset = None


class CollectionUpdate(BaseModel):
    """Fields to change. A new model, size, metric, storage or index makes a new embedding version, filled by the
    worker while searches read the current one and made active once filled; changing chunking re-chunks every
    document. Leaving a field out keeps it; null is only for embedding_model and
    dimensions (the provider's default), since the other fields have no null to become."""

    model_config = ConfigDict(extra="forbid")

    description: Description | None = None
    embedding_provider: Provider | None = None
    embedding_model: ModelName | None = None
    dimensions: int | None = Field(default=None, ge=1, le=4000)
    metric: Metric | None = None
    storage: Storage | None = None
    chunking: Chunking | None = None
    language: Language | None = None
    hnsw: Hnsw | None = None
    bm25_k1: Bm25K1 | None = None
    bm25_b: Bm25B | None = None
    metadata: StorableObject | None = None
    feedback_dataset: FeedbackDataset = None

    @field_validator(
        "description", "embedding_provider", "metric", "storage", "chunking", "language", "hnsw", "bm25_k1",
        "bm25_b", "metadata",
    )  # fmt: skip
    @classmethod
    def _not_null(cls, value: object) -> object:
        """Runs only for fields the body names (defaults are not validated), so null here was sent."""
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep its value")
        return value


class CollectionOut(BaseModel):
    name: str
    description: str
    embedding_provider: str
    embedding_model: str
    dimensions: int
    metric: str
    storage: str
    chunking: dict[str, Any]
    language: str
    hnsw: Hnsw
    bm25_k1: float
    bm25_b: float
    metadata: dict[str, Any]
    active_version: int = Field(description="The embedding version searches read (GET .../embeddings lists them).")
    feedback_dataset: str | None = Field(description="The dataset search feedback is kept in.")
    documents: dict[str, int] = Field(description="Documents by status.")
    created_at: datetime
    updated_at: datetime
