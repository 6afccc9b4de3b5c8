"""Response bodies of GET /v1/collections/{name}/evaluations[/{run}]."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PARAMS = (
    "How the run was run: source (the dataset, or the queries and qrels files), queries (judged queries run), modes, "
    "k_depth, version (the embedding version searched), model (that embedded the queries; null for text alone), "
    "fusion (hybrid's settings; null: the function's default), sweep (whether the latency sweep ran), tune (null, or "
    "dev_fraction, seed, save)."
)


class EvalRunItem(BaseModel):
    id: int
    created_at: datetime
    params: dict[str, Any] = Field(description=PARAMS)
    modes: dict[str, dict[str, float | int]] = Field(
        description="Each mode's metrics, as `memora eval --json` prints them: ndcg@10, recall@10, recall@100, "
        "mrr@10, p50_ms, p95_ms, queries."
    )


class EvalRunPage(BaseModel):
    items: list[EvalRunItem] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as cursor for the next (older) page; null on the last page.")


class EvalRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    params: dict[str, Any] = Field(description=PARAMS)
    summary: dict[str, Any] = Field(
        description="What the run measured: what `memora eval --json` printed (modes; tune and report when asked), "
        "recall_curve (each mode's mean recall@k for k = 1..100) and sweep (the latency sweep's points: mode, label, "
        "ef_search, candidates, p50_ms, ndcg@10; empty without --report)."
    )
