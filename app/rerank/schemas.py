"""The `rerank` option that search and answer requests take."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TOP_N = 50
MAX_TOP_N = 200

Provider = Literal["openai", "local"]


class RerankOptions(BaseModel):
    """Re-score the best `top_n` fused candidates with a reranker; the results come back in its order."""

    model_config = ConfigDict(extra="forbid")

    top_n: int = Field(
        default=DEFAULT_TOP_N,
        ge=1,
        le=MAX_TOP_N,
        description="Candidates the reranker scores; search fetches max(k, top_n) and returns the best k.",
    )
    provider: Provider = Field(
        default="openai",
        description="openai: POST /v1/rerank on MEMORA_OPENAI_BASE_URL (vLLM, Jina, Cohere, LiteLLM); local: a "
        "cross-encoder on this machine (none is installed: no PyPI package ships one's weights).",
    )
    model: str = Field(min_length=1, max_length=256, description="The rerank model, as the server names it.")
