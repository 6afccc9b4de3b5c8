"""Request and response bodies of search."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.db.replicas import LSN_PATTERN
from app.db.storable import StorableObject, StorableText
from app.rerank.schemas import RerankOptions

Mode = Literal["hybrid", "text", "vector"]
Fusion = Literal["convex", "rrf"]
Include = Literal["text", "metadata", "highlights", "scores", "sql"]
DEFAULT_INCLUDE: list[Include] = ["text", "metadata", "scores"]

FLOAT32_MAX = 3.4028234663852886e38
# pgvector's vector type holds at most 16,000 dimensions.
MAX_VECTOR_DIMENSIONS = 16_000

Component = Annotated[float, Field(allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
Weight = Annotated[float, Field(allow_inf_nan=False, ge=0, le=1e6)]


class Weights(BaseModel):
    """How much each ranking counts in hybrid search (either fusion); 0 leaves a ranking out."""

    model_config = ConfigDict(extra="forbid")

    text: Weight = 1.0
    vector: Weight = 1.0

    @model_validator(mode="after")
    def _one_counts(self) -> Weights:
        if self.text == 0 and self.vector == 0:
            raise ValueError("at least one weight must be above 0")
        return self


class Consistency(BaseModel):
    """Read-your-writes where there are read replicas (docs/scaling.md): without it a read is eventual."""

    model_config = ConfigDict(extra="forbid")

    after: str = Field(
        pattern=LSN_PATTERN,
        description="Serve this read only from a server that has replayed the primary's WAL to this position: the "
        "`Memora-LSN` header of a write's response. A replica that has not is passed over for the primary.",
        examples=["0/3000148"],
    )


class SearchRequest(BaseModel):
    """A search: give query text, an embedding of your own, or both."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"query": "parental leave", "k": 5, "filter": {"team": "hr", "year": {"$gte": 2020}}},
                {"query": "parental leave", "mode": "text", "include": ["text", "highlights"]},
            ]
        },
    )

    query: StorableText | None = Field(
        default=None,
        description="Text to search for. Text search matches any of its words (BM25); vector and hybrid search "
        "embed it with the collection's model unless `embedding` is given.",
    )
    embedding: list[Component] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_VECTOR_DIMENSIONS,
        description="A query vector you computed, with the collection's dimensions (vector and hybrid modes).",
    )
    mode: Mode = Field(
        default="hybrid",
        description="hybrid: BM25 and nearest neighbours fused (see `fusion`); text: BM25; "
        "vector: nearest neighbours. Hybrid with an embedding and no query runs as vector.",
    )
    k: int = Field(default=10, ge=1, description="How many results, at most MEMORA_SEARCH_MAX_K (default 100).")
    version: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="Vector and hybrid: the embedding version whose vectors to search (and whose model embeds the "
        "query); default the active one.",
    )
    filter: StorableObject | None = Field(
        default=None,
        description='Conditions on metadata and document fields, e.g. {"year": {"$gte": 2020}} (see docs/rest.md).',
    )
    fusion: Fusion = Field(
        default="convex",
        description="Hybrid: convex, the weighted mean of each ranking's scores min-max normalised to [0, 1] (a "
        "result absent from a ranking scores 0 there); rrf, Reciprocal Rank Fusion, weight / (rrf_k + rank) summed "
        "over the rankings.",
    )
    rrf_k: int = Field(default=60, ge=0, le=100_000, description="Hybrid, rrf: the k of RRF, 1 / (rrf_k + rank).")
    weights: Weights = Field(default_factory=Weights, description="Hybrid: the weight of each ranking.")
    candidates: int | None = Field(
        default=None, ge=1, le=10_000, description="Hybrid: candidates taken from each ranking (default 4 * k)."
    )
    ef_search: int | None = Field(
        default=None, ge=1, le=1000, description="Vector and hybrid: HNSW ef_search for this query."
    )
    exact: bool = Field(default=False, description="Vector and hybrid: compare with every vector, not the index.")
    include: list[Include] = Field(
        default_factory=lambda: list(DEFAULT_INCLUDE),
        description="What each result carries beyond ids, offsets, title and score: text, metadata, highlights, "
        "scores; and sql, the response's `sql` (not with rerank).",
    )
    rerank: RerankOptions | None = Field(
        default=None,
        description="Re-score the best top_n results with a reranker and return them in its order (needs query "
        "text; see docs/rerank.md). Off by default.",
    )
    consistency: Consistency | None = Field(
        default=None, description="Read-your-writes on read replicas; unset: whatever a fit replica holds."
    )


class TextScores(BaseModel):
    rank: int = Field(description="Rank among the BM25 candidates, 1 = best.")
    score: float = Field(description="BM25 score.")


class VectorScores(BaseModel):
    rank: int = Field(description="Rank among the nearest-neighbour candidates, 1 = nearest.")
    score: float = Field(description="Similarity: 1 - cosine distance, inner product, or -L2 distance.")
    distance: float = Field(description="pgvector's distance for the collection's metric.")


class RerankScores(BaseModel):
    score: float = Field(description="The reranker's score, on its model's own scale.")
    rank: int = Field(description="Rank after reranking, 1 = best.")
    original_rank: int = Field(description="Rank before reranking (the search's own order).")


class Scores(BaseModel):
    """Each ranking's view of a result; null where the result was not among that ranking's candidates."""

    text: TextScores | None = None
    vector: VectorScores | None = None
    fused: float | None = Field(
        default=None, description="Hybrid: the fused score, convex or RRF (also the result's score unless reranked)."
    )
    rerank: RerankScores | None = Field(default=None, description="With rerank: the reranker's view; null past top_n.")


class SearchResult(BaseModel):
    """One chunk. Fields left out of `include` are absent."""

    chunk_id: int
    document_id: int
    external_id: str
    ordinal: int = Field(description="Position of the chunk in its document, from 0.")
    char_start: int = Field(description="The chunk is the document's content[char_start:char_end].")
    char_end: int
    title: str = Field(description="What the chunk is indexed under: document title and heading path.")
    score: float = Field(
        description="What results are ordered by: BM25, similarity, the fused score, or the reranker's score."
    )
    text: str | None = None
    metadata: dict[str, Any] | None = Field(default=None, description="The document's metadata.")
    chunk_metadata: dict[str, Any] | None = Field(default=None, description="The chunk's own: headings, page.")
    highlight: str | None = Field(
        default=None,
        description="The passage of the text that best matches the query, HTML-escaped, its matching words in "
        "<b></b>; null without query text.",
    )
    scores: Scores | None = None


class SearchResponse(BaseModel):
    results: list[SearchResult]
    mode: Mode = Field(description="The search that ran.")
    k: int
    embedding_version: int | None = Field(
        default=None, description="The embedding version whose vectors were searched (null for text search)."
    )
    took_ms: float = Field(description="Time spent answering, in milliseconds.")
    sql: str | None = Field(
        default=None,
        description='With include "sql": one SQL statement that, run in psql against the same database, returns '
        "the same chunks in the same order (column chunk_id): the statement this search ran, with its parameters "
        "as literals; the query vector, when there is one, in pgvector's text form. Absent otherwise. A rerank "
        'cannot be reproduced in SQL, so include "sql" with rerank is a 422 naming body.include.',
    )
