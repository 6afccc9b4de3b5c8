"""Requests and answers of /v1/collections/{name}/embeddings."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    source: Literal["worker", "import"] = Field(
        default="worker",
        description="worker: the worker embeds every chunk with the model; import: you send the vectors "
        "(POST .../embeddings/{number}/vectors), and the worker leaves the version to you. Queries are embedded with "
        "the model either way.",
    )


class TrainRequest(BaseModel):
    """An adapter to train on judged queries (app/adapters/): the worker trains it, then fills its version."""

    model_config = ConfigDict(extra="forbid")

    pairs: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="A dataset whose pairs examples name their relevant documents (source or metadata.relevant), "
        "as `memora eval --dataset` reads them; search feedback is such a dataset.",
    )
    base: int | None = Field(default=None, ge=1, le=2**31 - 1, description="The version to adapt; default: active.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seeds the splits and the training.")


class VersionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["building"] | None = Field(default=None, description="building: fill a failed version again.")
    source: Literal["worker", "import"] | None = Field(
        default=None,
        description="worker: the worker embeds what the version lacks (an imported version's missing chunks); "
        "import: it leaves the version to your imports.",
    )

    @model_validator(mode="after")
    def _something(self) -> VersionUpdate:
        if self.status is None and self.source is None:
            raise ValueError("give status or source")
        return self


class Activation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = Field(default=False, description="Activate even if chunks lack the version's vectors.")


class VersionOut(BaseModel):
    number: int
    active: bool
    status: str = Field(
        description="training (an adapter the worker trains), building (the worker is filling it), ready, or failed "
        "(see error)"
    )
    error: str | None
    source: str = Field(description="worker (the worker embeds the chunks) or import (you send the vectors)")
    activate_when_ready: bool = Field(
        description="Becomes the active version once ready (made so by a PATCH of the collection's model)."
    )
    embedding_provider: str
    embedding_model: str
    dimensions: int
    metric: str
    storage: str
    hnsw: Hnsw
    vectors: int = Field(description="Chunks that have a vector in this version.")
    chunks: int = Field(description="Chunks of the collection.")
    bytes: int = Field(description="Disk the version's vectors and HNSW index take.")
    adapter: dict[str, Any] | None = Field(
        description="An adapter's base version and training report (held-out results by split); null for others."
    )
    created_at: datetime
