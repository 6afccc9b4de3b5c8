"""Duplicates in a dataset: exact ones (same text_hash), near ones (embedding cosine >= a threshold), and the
near duplicates that cross the train/test boundary (leakage).

Near duplicates are found with a partial HNSW index of the dataset's example embeddings (ix_example_embedding_d<id>,
made on demand): each example asks it for its k nearest neighbours, so the work grows with n·k, never n². Pairs at
or above the threshold are joined into clusters with union-find. An example's text is memora.example_text, the same
text that, normalised, gives its text_hash.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.engine import compose, execute_identifiers
from app.db.models import MAX_INDEXED_DIMENSIONS, Dataset
from app.db.query import schema_of
from app.embeddings.base import Embedder
from app.embeddings.registry import default_model, get_embedder
from app.errors import InvalidInputError
from app.training.datasets import service

Provider = Literal["local", "openai", "hashing"]
# Progress of a long step: (step, done, total); the CLI draws it as a bar.
ProgressFn = Callable[[str, int, int], None]


def _no_progress(step: str, done: int, total: int) -> None:
    pass


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


def _chosen(embedder: Embedder) -> EmbeddingChoice:
    return EmbeddingChoice(provider=embedder.provider, model=embedder.model, dimensions=embedder.dimensions)


# ---- embeddings and the per-dataset index ---------------------------------------------------------------------


def index_name(dataset_id: int) -> str:
    return f"ix_example_embedding_d{int(dataset_id)}"


def _index_state(conn: Connection, dataset_id: int) -> tuple[bool, dict[str, Any] | None]:
    """Whether the dataset's index exists, and the model its comment records."""
    name = sql.Identifier(schema_of(conn), index_name(dataset_id)).as_string(conn.connection.driver_connection)
    row = conn.exec_driver_sql(
        "SELECT to_regclass(%(ix)s) IS NOT NULL AS present, obj_description(to_regclass(%(ix)s), 'pg_class') AS note",
        {"ix": name},
    ).one()
    try:
        recorded = json.loads(row.note) if row.note else None
    except ValueError:
        recorded = None
    return bool(row.present), recorded


def ensure_embeddings(
    db: Session, dataset: Dataset, embedder: Embedder, *, batch_size: int = 64, progress: ProgressFn = _no_progress
) -> int:
    """Embed the live examples that have no embedding yet, and make the dataset's HNSW index; returns how many were
    embedded. Embeddings of another model (the index's comment records which) are dropped and redone."""
    conn = db.connection()
    wanted = _chosen(embedder).model_dump()
    present, recorded = _index_state(conn, dataset.id)
    if present and recorded == wanted:
        return _embed_missing(conn, dataset.id, embedder, batch_size, progress)
    # CREATE/DROP INDEX lock the whole example table; one at a time, so two of them never deadlock.
    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtextextended('memora.example_embedding_index', 0))")
    present, recorded = _index_state(conn, dataset.id)
    if present and recorded == wanted:
        return _embed_missing(conn, dataset.id, embedder, batch_size, progress)
    # An index built over HOT chains that its own transaction made cannot serve that transaction (indcheckxmin),
    # and an update of `embedding` is HOT unless some index covers the column. So embeddings are cleared while
    # the old index still covers them, and new ones are written before the index is built (one bulk build) only
    # when another dataset's index covers the column; otherwise into the new index, row by row.
    clear = "UPDATE {} SET embedding = NULL WHERE dataset_id = %(d)s AND embedding IS NOT NULL"
    conn.exec_driver_sql(compose(conn, clear, "example"), {"d": dataset.id})
    if present:
        execute_identifiers(conn, sql.SQL("DROP INDEX {}").format(_ix(conn, dataset.id)))
    if _other_indexes(conn, dataset.id):
        embedded = _embed_missing(conn, dataset.id, embedder, batch_size, progress)
        _create_index(conn, dataset.id, embedder.dimensions, json.dumps(wanted))
        return embedded
    _create_index(conn, dataset.id, embedder.dimensions, json.dumps(wanted))
    return _embed_missing(conn, dataset.id, embedder, batch_size, progress)


def _other_indexes(conn: Connection, dataset_id: int) -> bool:
    """Whether another dataset's embedding index exists (so updates of `embedding` are not HOT)."""
    found = conn.exec_driver_sql(
        "SELECT EXISTS (SELECT FROM pg_indexes WHERE schemaname = %(s)s AND tablename = 'example' "
        "AND indexname LIKE 'ix\\_example\\_embedding\\_d%%' AND indexname <> %(ours)s)",
        {"s": schema_of(conn), "ours": index_name(dataset_id)},
    )
    return bool(found.scalar_one())


def _ix(conn: Connection, dataset_id: int) -> sql.Identifier:
    return sql.Identifier(schema_of(conn), index_name(dataset_id))


_MISSING = """
    SELECT e.id, e.seq, coalesce({}(e.format, e.input, e.output), '') AS text
    FROM {} e
    WHERE e.dataset_id = %(d)s AND e.deleted_at IS NULL AND e.embedding IS NULL AND e.seq > %(after)s
    ORDER BY e.seq LIMIT %(n)s
"""


def _embed_missing(conn: Connection, dataset_id: int, embedder: Embedder, batch_size: int, progress: ProgressFn) -> int:
    count = "SELECT count(*) FROM {} WHERE dataset_id = %(d)s AND deleted_at IS NULL AND embedding IS NULL"
    missing = int(conn.exec_driver_sql(compose(conn, count, "example"), {"d": dataset_id}).scalar_one())
    select = compose(conn, _MISSING, "example_text", "example")
    update = compose(conn, "UPDATE {} SET embedding = %(e)s WHERE dataset_id = %(d)s AND id = %(id)s", "example")
    done, after = 0, -1
    progress("embedding", 0, missing)
    while rows := conn.exec_driver_sql(select, {"d": dataset_id, "after": after, "n": batch_size}).all():
        vectors = embedder.embed([row.text for row in rows])
        values = [{"e": vector, "d": dataset_id, "id": row.id} for row, vector in zip(rows, vectors, strict=True)]
        conn.exec_driver_sql(update, values)
        done, after = done + len(rows), rows[-1].seq
        progress("embedding", done, missing)
    return done


def _vector_parts(conn: Connection, dimensions: int) -> dict[str, sql.Composable]:
    """The pieces of SQL that name pgvector's objects in the schema it is installed in, for DIMENSIONS."""
    ext = conn.exec_driver_sql(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector'"
    ).scalar_one()
    schema = sql.Identifier(ext)
    return {
        "vec": sql.SQL("{}.vector({})").format(schema, _dims(dimensions)),
        "dist": sql.SQL("OPERATOR({}.<=>)").format(schema),
        "ndims": sql.SQL("{}.vector_dims").format(schema),
        "ops": sql.SQL("{}.vector_cosine_ops").format(schema),
        "dims": _dims(dimensions),
    }


def _create_index(conn: Connection, dataset_id: int, dimensions: int, note: str) -> None:
    """The predicate names the dimensions, so vectors of another model (rows being re-embedded in this
    transaction) stay out of the index instead of failing its cast."""
    statement = sql.SQL(
        "CREATE INDEX {name} ON {table} USING hnsw ((embedding::{vec}) {ops}) "
        "WHERE dataset_id = {d} AND {ndims}(embedding) = {dims} AND deleted_at IS NULL"
    ).format(
        name=sql.Identifier(index_name(dataset_id)),
        table=sql.Identifier(schema_of(conn), "example"),
        d=sql.Literal(int(dataset_id)),
        **_vector_parts(conn, dimensions),
    )
    execute_identifiers(conn, statement)
    execute_identifiers(conn, sql.SQL("COMMENT ON INDEX {} IS {}").format(_ix(conn, dataset_id), sql.Literal(note)))


def drop_index(db: Session, dataset_id: int) -> None:
    """Drop a dataset's embedding index (call when the dataset is deleted; its predicate matches nothing then)."""
    conn = db.connection()
    execute_identifiers(conn, sql.SQL("DROP INDEX IF EXISTS {}").format(_ix(conn, dataset_id)))


def _dims(dimensions: int) -> sql.SQL:
    """A type modifier cannot be a parameter: the (validated) integer goes into the text."""
    if not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_INDEXED_DIMENSIONS["vector"]:
        raise ValueError(f"not a dimension count: {dimensions!r}")
    return sql.SQL(str(dimensions))


# ---- nearest neighbours through the index ---------------------------------------------------------------------

Mode = Literal["all", "distinct", "leakage"]
# The filters that make each kind of neighbour search: "all" pairs every example with its k nearest others;
# "distinct" skips examples with the same text_hash (they are exact duplicates, reported as such) and asks only
# from the first example of each text_hash; "leakage" asks from validation and test examples for train neighbours.
_INNER = {
    "all": "AND x.id <> q.id",
    "distinct": "AND x.text_hash <> q.text_hash",
    "leakage": "AND x.split = 'train' AND x.text_hash <> q.text_hash",
}
_OUTER = {
    "all": "",
    "distinct": "AND NOT EXISTS (SELECT FROM {example} o WHERE o.dataset_id = q.dataset_id "
    "AND o.text_hash = q.text_hash AND o.deleted_at IS NULL AND o.seq < q.seq)",
    "leakage": "AND q.split IN ('validation', 'test')",
}
# x's WHERE is the index's predicate and its ORDER BY the index's expression, so the planner can use the index.
_NEIGHBOURS = """
    SELECT q.id AS a, q.seq AS a_seq, q.split AS a_split, n.id AS b, n.seq AS b_seq, 1 - n.distance AS similarity
    FROM {example} q
    CROSS JOIN LATERAL (
        SELECT x.id, x.seq, x.embedding::{vec} {dist} q.embedding::{vec} AS distance
        FROM {example} x
        WHERE x.dataset_id = {d} AND {ndims}(x.embedding) = {dims} AND x.deleted_at IS NULL {inner}
        ORDER BY x.embedding::{vec} {dist} q.embedding::{vec}
        LIMIT %(k)s
    ) n
    WHERE q.dataset_id = {d} AND {ndims}(q.embedding) = {dims} AND q.deleted_at IS NULL
      AND q.seq > %(after)s AND q.seq <= %(upto)s {outer}
"""


def neighbour_statement(conn: Connection, dataset_id: int, dimensions: int, mode: Mode) -> str:
    """The k-nearest-neighbours query of MODE (parameters k, after, upto: a window of query seqs)."""
    example = sql.Identifier(schema_of(conn), "example")
    template = _NEIGHBOURS.replace("{inner}", _INNER[mode]).replace("{outer}", _OUTER[mode])
    statement = sql.SQL(template).format(
        example=example, d=sql.Literal(int(dataset_id)), **_vector_parts(conn, dimensions)
    )
    return statement.as_string(conn.connection.driver_connection)


def search_settings(conn: Connection, k: int) -> None:
    """Settings of the neighbour queries, for the rest of the transaction.

    ef_search bounds what one index scan returns; filtered scans go on (relaxed order) until k rows pass. Sorting is
    off, which leaves the index as the only way to the nearest rows: for a dataset of a few thousand examples the
    planner prices a scan and sort per query below the index, and n of them are the n² comparisons it avoids.
    """
    conn.exec_driver_sql(
        "SELECT set_config('hnsw.ef_search', %(ef)s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true),"
        " set_config('enable_sort', 'off', true)",
        {"ef": str(min(1000, max(40, 2 * k)))},
    )


def neighbours(
    conn: Connection,
    dataset: Dataset,
    dimensions: int,
    mode: Mode,
    k: int,
    threshold: float,
    *,
    window: int = 256,
    progress: ProgressFn = _no_progress,
) -> list[Any]:
    """Pairs (a, b, similarity) with similarity >= THRESHOLD among each query example's k nearest neighbours."""
    search_settings(conn, k)
    statement = neighbour_statement(conn, dataset.id, dimensions, mode)
    last = int(
        conn.exec_driver_sql(
            compose(conn, "SELECT next_seq FROM {} WHERE id = %(d)s", "dataset"), {"d": dataset.id}
        ).scalar_one()
    )
    pairs = []
    progress("searching", 0, last)
    for start in range(-1, last - 1, window):
        upto = min(start + window, last - 1)
        rows = conn.exec_driver_sql(statement, {"k": k, "after": start, "upto": upto}).all()
        pairs += [r for r in rows if not math.isnan(r.similarity) and r.similarity >= threshold]
        progress("searching", upto + 1, last)
    return pairs


# ---- dedup ----------------------------------------------------------------------------------------------------

_EXACT = """
    SELECT array_agg(id ORDER BY seq) AS ids, array_agg(seq ORDER BY seq) AS seqs
    FROM {} WHERE dataset_id = %(d)s AND deleted_at IS NULL
    GROUP BY text_hash HAVING count(*) > 1
    ORDER BY min(seq)
"""


def dedup(
    db: Session, name: str, request: DedupRequest, settings: Settings, *, progress: ProgressFn = _no_progress
) -> DedupReport:
    """Report exact and near duplicate clusters of dataset NAME; with request.drop, keep one of each."""
    dataset = service.get(db, name)
    embedder = embedder_for(request, settings) if request.near is not None else None
    conn = db.connection()
    clusters: list[Cluster] = []
    first: dict[int, int] = {}
    seq: dict[int, int] = {}
    if request.exact:
        for r in conn.exec_driver_sql(compose(conn, _EXACT, "example"), {"d": dataset.id}):
            clusters.append(Cluster(kind="exact", keep=r.ids[0], members=r.ids, max_similarity=1, min_similarity=1))
            first |= dict.fromkeys(r.ids, r.ids[0])
            seq |= dict(zip(r.ids, r.seqs, strict=True))
    embedded = 0
    if request.near is not None and embedder is not None:
        embedded = ensure_embeddings(db, dataset, embedder, batch_size=settings.embed_batch_size, progress=progress)
        mode: Mode = "distinct" if request.exact else "all"
        near = request.near
        found = neighbours(conn, dataset, embedder.dimensions, mode, near.k, near.threshold, progress=progress)
        # With exact clusters reported, a near cluster joins their first examples (the ones that stay).
        clusters += _near_clusters(found, first, seq)
    drop = [member for c in clusters for member in c.members if member != c.keep]
    tombstoned, deleted = remove(db, dataset, drop) if request.drop else (0, 0)
    counts = {
        "exact_clusters": sum(c.kind == "exact" for c in clusters),
        "near_clusters": sum(c.kind == "near" for c in clusters),
        "duplicates": len(drop),
        "embedded": embedded,
        "dropped": tombstoned + deleted,
        "tombstoned": tombstoned,
        "deleted": deleted,
    }
    chosen = _chosen(embedder) if embedder is not None else None
    return DedupReport(clusters=clusters[: request.limit], counts=counts, embedding=chosen)


def _near_clusters(pairs: Iterable[Any], first: dict[int, int], seq: dict[int, int]) -> list[Cluster]:
    """Union-find over the pairs, each end mapped to the first example of its exact cluster (FIRST; SEQ has their
    seqs)."""
    parent: dict[int, int] = {}
    seq = dict(seq)

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges: list[tuple[int, int, float]] = []
    for p in pairs:
        a, b = first.get(p.a, p.a), first.get(p.b, p.b)
        if a == b:
            continue
        seq[p.a], seq[p.b] = p.a_seq, p.b_seq
        edges.append((a, b, float(p.similarity)))
        parent[root(a)] = root(b)
    members: dict[int, list[int]] = {}
    for x in parent:
        members.setdefault(root(x), []).append(x)
    similarities: dict[int, list[float]] = {}
    for a, _, similarity in edges:
        similarities.setdefault(root(a), []).append(similarity)
    clusters = []
    for r, ids in members.items():
        ids.sort(key=lambda x: seq.get(x, 0))
        s = similarities[r]
        clusters.append(Cluster(kind="near", keep=ids[0], members=ids, max_similarity=max(s), min_similarity=min(s)))
    clusters.sort(key=lambda c: seq.get(c.keep, 0))
    return clusters


def remove(db: Session, dataset: Dataset, example_ids: list[int]) -> tuple[int, int]:
    """Remove examples from the live dataset as service.remove_example does, in two statements: those a snapshot
    holds become tombstones, the rest are deleted. Returns (tombstoned, deleted)."""
    if not example_ids:
        return 0, 0
    conn = db.connection()
    params = {"d": dataset.id, "ids": example_ids}
    tombstone = """
        UPDATE {} e SET deleted_at = now()
        WHERE e.dataset_id = %(d)s AND e.id = ANY(%(ids)s) AND e.deleted_at IS NULL
          AND EXISTS (SELECT FROM {} s WHERE s.dataset_id = e.dataset_id AND s.example_id = e.id)
    """
    tombstoned = conn.exec_driver_sql(compose(conn, tombstone, "example", "snapshot_example"), params).rowcount
    delete = "DELETE FROM {} WHERE dataset_id = %(d)s AND id = ANY(%(ids)s) AND deleted_at IS NULL"
    deleted = conn.exec_driver_sql(compose(conn, delete, "example"), params).rowcount
    return int(tombstoned), int(deleted)


# ---- leakage --------------------------------------------------------------------------------------------------

_EXACT_CROSSINGS = """
    SELECT t.id AS train_id, o.id AS other_id, o.split AS other_split
    FROM {} t JOIN {} o ON o.dataset_id = t.dataset_id AND o.text_hash = t.text_hash
    WHERE t.dataset_id = %(d)s AND t.split = 'train' AND t.deleted_at IS NULL
      AND o.split IN ('validation', 'test') AND o.deleted_at IS NULL
"""


def leakage(
    db: Session,
    name: str,
    settings: Settings,
    *,
    threshold: float,
    k: int,
    choice: EmbeddingChoice,
    limit: int = 1000,
    progress: ProgressFn = _no_progress,
) -> LeakageReport:
    """Pairs of a train example and a validation or test example that are exact or near duplicates."""
    dataset = service.get(db, name)
    embedder = embedder_for(choice, settings)
    conn = db.connection()
    params = {"d": dataset.id}
    pairs = [
        LeakPair(train_id=r.train_id, other_id=r.other_id, other_split=r.other_split, similarity=1, exact=True)
        for r in conn.exec_driver_sql(compose(conn, _EXACT_CROSSINGS, "example", "example"), params)
    ]
    embedded = ensure_embeddings(db, dataset, embedder, batch_size=settings.embed_batch_size, progress=progress)
    for r in neighbours(conn, dataset, embedder.dimensions, "leakage", k, threshold, progress=progress):
        pairs.append(LeakPair(train_id=r.b, other_id=r.a, other_split=r.a_split, similarity=r.similarity, exact=False))
    pairs.sort(key=lambda p: (-p.similarity, p.other_id, p.train_id))
    count = (
        "SELECT count(*) FROM {} WHERE dataset_id = %(d)s AND deleted_at IS NULL AND split IN ('validation', 'test')"
    )
    checked = int(conn.exec_driver_sql(compose(conn, count, "example"), params).scalar_one())
    counts = {
        "pairs": len(pairs),
        "exact": sum(p.exact for p in pairs),
        "near": sum(not p.exact for p in pairs),
        "train_validation": sum(p.other_split == "validation" for p in pairs),
        "train_test": sum(p.other_split == "test" for p in pairs),
        "embedded": embedded,
    }
    return LeakageReport(
        threshold=threshold, k=k, checked=checked, pairs=pairs[:limit], counts=counts, embedding=_chosen(embedder)
    )
