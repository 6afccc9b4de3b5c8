"""The searches an evaluation runs: the SQL API's _v1 functions, as the REST API and psql users call them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from app.embeddings.base import Vectors

MODES = ("text", "vector", "hybrid")
FUSIONS = ("convex", "rrf")

# Only the document of each hit comes back: the chunk texts would be transferred for nothing.
_TEXT = text("SELECT external_id FROM memora.search_text_v1(:collection, :query, :k)")
_VECTOR = text("SELECT external_id FROM memora.search_vector_v1(:collection, :embedding, :k, ef_search => :ef_search)")
_HYBRID = text(
    "SELECT external_id FROM memora.search_hybrid_v1(:collection, :query, :embedding, :k, "
    "fusion => :fusion, rrf_k => :rrf_k, text_weight => :text_weight, vector_weight => :vector_weight, "
    "candidates => :candidates, ef_search => :ef_search)"
)


@dataclass(frozen=True)
class FusionParams:
    """What search_vector_v1 and search_hybrid_v1 take beyond the query; None leaves the function's default."""

    fusion: str = "convex"
    rrf_k: int = 60
    text_weight: float = 1.0
    vector_weight: float = 1.0
    candidates: int | None = None
    ef_search: int | None = None


def search(
    conn: Connection,
    mode: str,
    collection: str,
    query: str,
    embedding: Vectors | None,
    k: int,
    params: FusionParams,
) -> list[str]:
    """The external ids of the documents of the K best chunks, one per chunk, best first."""
    if mode == "text":
        rows = conn.execute(_TEXT, {"collection": collection, "query": query, "k": k})
    elif mode == "vector":
        rows = conn.execute(
            _VECTOR, {"collection": collection, "embedding": embedding, "k": k, "ef_search": params.ef_search}
        )
    else:
        rows = conn.execute(
            _HYBRID,
            {
                "collection": collection,
                "query": query,
                "embedding": embedding,
                "k": k,
                "fusion": params.fusion,
                "rrf_k": params.rrf_k,
                "text_weight": params.text_weight,
                "vector_weight": params.vector_weight,
                "candidates": params.candidates,
                "ef_search": params.ef_search,
            },
        )
    return [str(row[0]) for row in rows]
