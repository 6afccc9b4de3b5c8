"""Requests and answers of /v1/collections/{name}/embeddings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.collections.schemas import Hnsw, Metric, ModelName, Provider, Storage


class VersionCreate(BaseModel):
    """A new version of a collection's vectors. What is left out is the active version's, except the model, which is
    the provider's default when the provider changes."""

    model_config = ConfigDict(extra="forbid")

    embedding_provider: Provider | None = None
    embedding_model: ModelName | None = None
    dimensions: int | None = Field(default=None, ge=1, le=4000, description="Default: the model's dimensions.")
    metric: Metric | None = None
    storage: Storage | None = None
    hnsw: Hnsw | None = None


class VersionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["building"] = Field(description="building: fill a failed version again.")


class Activation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = Field(default=False, description="Activate even if chunks lack the version's vectors.")


class VersionOut(BaseModel):
    number: int
    active: bool
    status: str = Field(description="building (the worker is filling it), ready, or failed (see error)")
    error: str | None
    embedding_provider: str
    embedding_model: str
    dimensions: int
    metric: str
    storage: str
    hnsw: Hnsw
    vectors: int = Field(description="Chunks that have a vector in this version.")
    chunks: int = Field(description="Chunks of the collection.")
    bytes: int = Field(description="Disk the version's vectors and HNSW index take.")
    created_at: datetime
