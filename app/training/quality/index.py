"""A dataset's example embeddings and the partial HNSW index over them (ix_example_embedding_d<id>), made on
demand by deduplication and the leakage report.

The index's comment records the embedding model (provider, model, dimensions) that filled it; asking with another
model clears the embeddings and builds the index again. Near duplicates are then found through it
(app/training/quality/neighbours.py), so the work grows with n·k, never n².
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from psycopg import sql
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import MAX_INDEXED_DIMENSIONS, Dataset
from app.db.query import Query, schema_of
from app.embeddings.base import Embedder
from app.embeddings.registry import default_model, get_embedder
from app.errors import AppError, EmbeddingProviderError, InvalidInputError
from app.training.quality.schemas import EmbeddingChoice

# Progress of a long step: (step, done, total); the CLI draws it as a bar.
ProgressFn = Callable[[str, int, int], None]


def no_progress(step: str, done: int, total: int) -> None:
    pass


def embedder_for(choice: EmbeddingChoice, settings: Settings) -> Embedder:
    """The embedder CHOICE names; a bad combination is a 422 naming provider, model or dimensions."""
    default_name, default_dimensions = default_model(choice.provider)
    model = choice.model or default_name
    dimensions = choice.dimensions or (default_dimensions if model == default_name else None)
    if dimensions is None:
        raise InvalidInputError.for_field("dimensions", f"is required for a model other than {default_name}")
    if dimensions > MAX_INDEXED_DIMENSIONS["vector"]:
        raise InvalidInputError.for_field(
            "dimensions", f"HNSW indexes at most {MAX_INDEXED_DIMENSIONS['vector']} dimensions"
        )
    try:
        return get_embedder(choice.provider, model, dimensions, settings)
    except InvalidInputError as exc:
        problem = exc.problems[0] if exc.problems else {"field": "", "reason": exc.message}
        field = {"embedding_provider": "provider", "embedding_model": "model"}.get(problem["field"], "dimensions")
        raise InvalidInputError.for_field(field, problem["reason"]) from None


def refused(exc: EmbeddingProviderError, choice: EmbeddingChoice) -> AppError:
    """EXC, or a 422 naming the field of CHOICE the server refused when the request gave it: a model the server does
    not have, or dimensions the model does not give. A default the request left alone stays the server's 502."""
    if exc.about is not None and getattr(choice, exc.about) is not None:
        return InvalidInputError.for_field(exc.about, exc.message)
    return exc


def chosen(embedder: Embedder) -> EmbeddingChoice:
    """The choice that names EMBEDDER, as reports give it."""
    return EmbeddingChoice(provider=embedder.provider, model=embedder.model, dimensions=embedder.dimensions)


_STATE = Query("""
    SELECT obj_description(c.oid, 'pg_class') AS note
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s AND c.relname = memora.example_index_name(%(d)s)
""")
# CREATE/DROP INDEX lock the whole example table; one at a time, so two of them never deadlock.
_LOCK = Query("SELECT pg_advisory_xact_lock(hashtextextended('memora.example_embedding_index', 0))")
_CLEAR = Query("UPDATE memora.example SET embedding = NULL WHERE dataset_id = %(d)s AND embedding IS NOT NULL")
_DROP = Query("SELECT memora.drop_example_index(%(d)s)")
_OTHER_INDEXES = Query(r"""
    SELECT EXISTS (
        SELECT FROM pg_indexes WHERE schemaname = %(schema)s AND tablename = 'example'
        AND indexname LIKE 'ix\_example\_embedding\_d%%' AND indexname <> memora.example_index_name(%(d)s)
    )
""")
_MISSING_COUNT = Query(
    "SELECT count(*) FROM memora.example WHERE dataset_id = %(d)s AND deleted_at IS NULL AND embedding IS NULL"
)
_MISSING = Query("""
    SELECT e.id, e.seq, coalesce(memora.example_text(e.format, e.input, e.output), '') AS text
    FROM memora.example e
    WHERE e.dataset_id = %(d)s AND e.deleted_at IS NULL AND e.embedding IS NULL AND e.seq > %(after)s
    ORDER BY e.seq LIMIT %(n)s
""")
_SET_EMBEDDING = Query("UPDATE memora.example SET embedding = %(e)s WHERE dataset_id = %(d)s AND id = %(id)s")
# The index and its comment, written by the SQL that writes every collection's index too (sql/idempotent/011).
_CREATE = Query("SELECT memora.create_example_index(%(d)s, %(dimensions)s, %(model)s::jsonb)")
_VECTOR_SCHEMA = Query("SELECT memora.vector_schema()")


def _recorded_model(conn: Connection, dataset_id: int) -> dict[str, Any] | None:
    """The model the dataset's index comment records; None without an index (or with a comment of no use)."""
    row = _STATE.run(conn, {"schema": schema_of(conn), "d": dataset_id}).one_or_none()
    if row is None:
        return None
    try:
        recorded = json.loads(row.note) if row.note else {}
    except ValueError:
        recorded = {}
    return recorded if isinstance(recorded, dict) else {}


def ensure_embeddings(
    db: Session, dataset: Dataset, embedder: Embedder, *, batch_size: int = 64, progress: ProgressFn = no_progress
) -> int:
    """Embed the live examples that have no embedding yet, and make the dataset's HNSW index; returns how many were
    embedded. Embeddings of another model (the index's comment records which) are dropped and redone."""
    conn = db.connection()
    wanted = chosen(embedder).model_dump()
    if _recorded_model(conn, dataset.id) == wanted:
        return _embed_missing(conn, dataset.id, embedder, batch_size, progress)
    _LOCK.run(conn)
    recorded = _recorded_model(conn, dataset.id)
    if recorded == wanted:
        return _embed_missing(conn, dataset.id, embedder, batch_size, progress)
    # An index built over HOT chains that its own transaction made cannot serve that transaction (indcheckxmin),
    # and an update of `embedding` is HOT unless some index covers the column. So embeddings are cleared while
    # the old index still covers them, and new ones are written before the index is built (one bulk build) only
    # when another dataset's index covers the column; otherwise into the new index, row by row.
    _CLEAR.run(conn, {"d": dataset.id})
    if recorded is not None:
        _DROP.run(conn, {"d": dataset.id})
    create = {"d": dataset.id, "dimensions": embedder.dimensions, "model": json.dumps(wanted)}
    if _OTHER_INDEXES.run(conn, {"schema": schema_of(conn), "d": dataset.id}).scalar_one():
        embedded = _embed_missing(conn, dataset.id, embedder, batch_size, progress)
        _CREATE.run(conn, create)
        return embedded
    _CREATE.run(conn, create)
    return _embed_missing(conn, dataset.id, embedder, batch_size, progress)


def _embed_missing(conn: Connection, dataset_id: int, embedder: Embedder, batch_size: int, progress: ProgressFn) -> int:
    missing = int(_MISSING_COUNT.run(conn, {"d": dataset_id}).scalar_one())
    done, after = 0, -1
    progress("embedding", 0, missing)
    while rows := _MISSING.run(conn, {"d": dataset_id, "after": after, "n": batch_size}).all():
        vectors = embedder.embed([row.text for row in rows])
        values = [{"e": vector, "d": dataset_id, "id": row.id} for row, vector in zip(rows, vectors, strict=True)]
        _SET_EMBEDDING.run(conn, values)
        done, after = done + len(rows), rows[-1].seq
        progress("embedding", done, missing)
    return done


def vector_parts(conn: Connection, dimensions: int) -> dict[str, sql.Composable]:
    """The pieces of SQL that name pgvector's objects in the schema it is installed in, for DIMENSIONS: the neighbour
    queries write the index's expression with them, so the planner can use the index."""
    if not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_INDEXED_DIMENSIONS["vector"]:
        raise ValueError(f"not a dimension count: {dimensions!r}")
    schema = sql.Identifier(_VECTOR_SCHEMA.run(conn).scalar_one())
    dims = sql.SQL(str(dimensions))  # a type modifier cannot be a parameter: the checked integer goes in the text
    return {
        "vec": sql.SQL("{}.vector({})").format(schema, dims),
        "dist": sql.SQL("OPERATOR({}.<=>)").format(schema),
        "ndims": sql.SQL("{}.vector_dims").format(schema),
        "dims": dims,
    }
