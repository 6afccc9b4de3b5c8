"""The searches an evaluation runs: the SQL API's functions, as the REST API and psql users call them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.db.models import Collection
from app.db.query import Query
from app.embeddings.base import Vectors

MODES = ("text", "vector", "hybrid")
FUSIONS = ("convex", "rrf")

# Only the document of each hit comes back: the chunk texts would be transferred for nothing.
_TEXT = Query("SELECT external_id FROM memora.search_text_v1(%(collection)s, %(query)s, %(k)s)")
_VECTOR = Query(
    "SELECT external_id FROM memora.search_vector_v2(%(collection)s, %(embedding)s, %(k)s, ef_search => %(ef_search)s, "
    "version => %(version)s)"
)
_HYBRID = Query(
    "SELECT external_id FROM memora.search_hybrid_v2(%(collection)s, %(query)s, %(embedding)s, %(k)s, "
    "fusion => %(fusion)s, rrf_k => %(rrf_k)s, text_weight => %(text_weight)s, vector_weight => %(vector_weight)s, "
    "candidates => %(candidates)s, ef_search => %(ef_search)s, version => %(version)s)"
)


@dataclass(frozen=True)
class FusionParams:
    """What search_vector_v2 and search_hybrid_v2 take beyond the query; None leaves the function's default (version:
    the embedding version searched, None for the active one)."""

    fusion: str = "convex"
    rrf_k: int = 60
    text_weight: float = 1.0
    vector_weight: float = 1.0
    candidates: int | None = None
    ef_search: int | None = None
    version: int | None = None


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
        rows = _TEXT.run(conn, {"collection": collection, "query": query, "k": k})
    elif mode == "vector":
        rows = _VECTOR.run(
            conn,
            {
                "collection": collection,
                "embedding": embedding,
                "k": k,
                "ef_search": params.ef_search,
                "version": params.version,
            },
        )
    else:
        rows = _HYBRID.run(
            conn,
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
                "version": params.version,
            },
        )
    return [str(row[0]) for row in rows]


# Each pairs example's query, the external ids its metadata names relevant, and its source document's external id.
_PAIRS = Query(
    "SELECT e.id, coalesce(e.input->>'query', e.input->>'anchor') AS query, e.metadata->'relevant' AS relevant, "
    "d.external_id AS source "
    "FROM memora.example e JOIN memora.dataset ds ON ds.id = e.dataset_id "
    "LEFT JOIN memora.document d ON d.collection_id = e.source_collection_id AND d.id = e.source_document_id "
    # Search feedback that a result was not relevant (app/search/feedback.py) is a custom example: a judgment of 0.
    "WHERE ds.name = %(name)s AND (e.format = 'pairs' OR (e.format = 'custom' AND e.metadata ? 'feedback')) "
    "AND e.deleted_at IS NULL "
    "AND (%(split)s::text IS NULL OR e.split = %(split)s) "
    "ORDER BY e.seq"
)


PairsRow = tuple[int, str | None, Any, str | None]


def pairs_examples(db: Session, name: str, split: str | None = None) -> list[PairsRow]:
    """(example id, query text, metadata.relevant, source document's external id) of each live pairs example, and
    of each example of search feedback."""
    rows = _PAIRS.run(db, {"name": name, "split": split})
    return [(int(row.id), row.query, row.relevant, row.source) for row in rows]


def save_search_defaults(db: Session, collection: Collection, defaults: dict[str, Any]) -> dict[str, Any]:
    """Store DEFAULTS as the collection's metadata["search_defaults"]; what was stored (as jsonb gives it back)."""
    collection.metadata_ = {**collection.metadata_, "search_defaults": defaults}
    db.flush()
    db.refresh(collection)
    return dict(collection.metadata_["search_defaults"])
