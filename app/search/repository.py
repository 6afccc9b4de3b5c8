"""Queries of search: the SQL API's search_*_v1 functions, and highlights of their results.

Keys and values of a filter travel as one jsonb parameter; memora.compile_filter turns it into a predicate over
parameters, so no part of a request ever becomes SQL text. The statements are Query constants: one string per
schema, made once, so a search sends its statement and nothing else. `as_sql` prints a search for psql (the
response's `sql`): the same statement with psycopg's literals in place of its parameters, made for display only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector.psycopg.vector import VectorDumper
from psycopg.types.json import Jsonb
from sqlalchemy import RowMapping, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.db.models import Collection
from app.db.query import Query
from app.errors import InvalidInputError, NotFoundError

Vector = npt.NDArray[np.float32]

# Arguments of the SQL functions named as the request body names them (the rest keep their names).
_FIELDS = {"query_embedding": "embedding", "text_weight": "weights.text", "vector_weight": "weights.vector"}

# ts_headline marks matches with characters of Unicode's private use area, so the text can be HTML-escaped first.
START, STOP = "\ue000", "\ue001"
_HEADLINE_OPTIONS = f'StartSel="{START}", StopSel="{STOP}"'

_TEXT_CALL = "memora.search_text_v1(%(collection)s, %(query)s, %(k)s::integer, %(filter)s::jsonb)"
_VECTOR_CALL = (
    "memora.search_vector_v2(%(collection)s, %(embedding)s, %(k)s::integer, %(filter)s::jsonb, "
    "%(ef_search)s::integer, %(exact)s::boolean, %(version)s::integer)"
)
_HYBRID_CALL = (
    "memora.search_hybrid_v2(%(collection)s, %(query)s, %(embedding)s, %(k)s::integer, "
    "%(filter)s::jsonb, %(fusion)s::text, %(rrf_k)s::integer, %(text_weight)s::float8, %(vector_weight)s::float8, "
    "%(candidates)s::integer, %(ef_search)s::integer, %(exact)s::boolean, %(version)s::integer)"
)
# A chunk's headline: ts_headline of its text for the query's terms (the tsquery BM25 matches with), in its language.
_HEADLINE = "ts_headline(c.language, c.text, memora.search_tsquery(c.language, %(highlight)s), %(options)s)"
_HEADLINES = Query(
    f"SELECT c.id, {_HEADLINE} AS headline FROM memora.chunk c JOIN memora.collection col ON col.id = c.collection_id "
    "WHERE col.name = %(collection)s AND c.id = ANY(%(ids)s::bigint[])"
)


def _searches(call: str) -> tuple[Query, Query]:
    """The statement that calls CALL, and the one that also gives each hit its `headline` in the same round trip
    (the function's rows in their order, WITH ORDINALITY; the headline as _HEADLINES computes it)."""
    highlighted = (
        f"SELECT h.*, (SELECT {_HEADLINE} FROM memora.chunk c JOIN memora.collection col ON col.id = c.collection_id "
        f"WHERE col.name = %(collection)s AND c.id = h.chunk_id) AS headline FROM {call} WITH ORDINALITY AS h "
        "ORDER BY h.ordinality"
    )
    return Query(f"SELECT * FROM {call}"), Query(highlighted)


_TEXT = _searches(_TEXT_CALL)
_VECTOR = _searches(_VECTOR_CALL)
_HYBRID = _searches(_HYBRID_CALL)


@dataclass(frozen=True, slots=True)
class Search:
    """One search statement and its parameters: what `run` executes and `as_sql` prints are the same."""

    collection: str
    statement: Query
    params: dict[str, Any]


def text_search(collection: str, query: str, k: int, filter_: Any, *, highlight: str | None = None) -> Search:
    """BM25 search (memora.search_text_v1); with HIGHLIGHT, each row's `headline` for that query's terms."""
    params = {"collection": collection, "query": query, "k": k, "filter": _jsonb(filter_)}
    return _search(collection, _TEXT, params, highlight)


def vector_search(
    collection: str,
    embedding: Vector,
    k: int,
    filter_: Any,
    *,
    ef_search: int | None,
    exact: bool,
    version: int | None = None,
    highlight: str | None = None,
) -> Search:
    """Nearest-neighbour search (memora.search_vector_v2) of embedding VERSION (None: the active one); with
    HIGHLIGHT, each row's `headline` for that query."""
    return _search(
        collection,
        _VECTOR,
        {
            "collection": collection,
            "embedding": embedding,
            "k": k,
            "filter": _jsonb(filter_),
            "ef_search": ef_search,
            "exact": exact,
            "version": version,
        },
        highlight,
    )


def hybrid_search(
    collection: str,
    query: str,
    embedding: Vector | None,
    k: int,
    filter_: Any,
    *,
    fusion: str,
    rrf_k: int,
    text_weight: float,
    vector_weight: float,
    candidates: int | None,
    ef_search: int | None,
    exact: bool,
    version: int | None = None,
    highlight: str | None = None,
) -> Search:
    """BM25 and nearest neighbours fused (memora.search_hybrid_v2, the vectors of embedding VERSION, None for the
    active one): convex combination or Reciprocal Rank Fusion; with HIGHLIGHT, each row's `headline` for that
    query."""
    return _search(
        collection,
        _HYBRID,
        {
            "collection": collection,
            "query": query,
            "embedding": embedding,
            "k": k,
            "filter": _jsonb(filter_),
            "fusion": fusion,
            "rrf_k": rrf_k,
            "text_weight": text_weight,
            "vector_weight": vector_weight,
            "candidates": candidates,
            "ef_search": ef_search,
            "exact": exact,
            "version": version,
        },
        highlight,
    )


def run(db: Session, search: Search) -> list[RowMapping]:
    """The rows of SEARCH, in its order."""
    return _rows(db, search.collection, search.statement, search.params)


def as_sql(db: Session, search: Search) -> str:
    """SEARCH as one statement to paste into psql: the text `run` sends, in the session's schema, with psycopg
    quoting each parameter as a literal (ClientCursor.mogrify) and the query vector in pgvector's text form.

    The statement carries every setting: the search functions set hnsw.ef_search and hnsw.iterative_scan
    themselves (set_config, local to the call) from their arguments, so no SET precedes it."""
    conn = db.connection()
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    with psycopg.ClientCursor(driver) as cursor:
        # The vector literal left untyped, so psql need not find type `vector` on its search_path: the function's
        # parameter types it, as it does the bound parameter.
        cursor.adapters.register_dumper("numpy.ndarray", VectorDumper)
        return cursor.mogrify(search.statement.sql(conn), search.params) + ";"


def headlines(db: Session, collection: str, chunk_ids: Sequence[int], query: str) -> dict[int, str | None]:
    """ts_headline of each chunk for the query's terms (memora.search_tsquery), matches between START and STOP."""
    params = {"collection": collection, "highlight": query, "ids": list(chunk_ids), "options": _HEADLINE_OPTIONS}
    return {row["id"]: row["headline"] for row in _rows(db, collection, _HEADLINES, params)}


def _search(collection: str, statements: tuple[Query, Query], params: dict[str, Any], highlight: str | None) -> Search:
    """A search statement: the plain one, or with HIGHLIGHT the one whose rows carry their `headline`."""
    if highlight is None:
        return Search(collection, statements[0], params)
    return Search(collection, statements[1], params | {"highlight": highlight, "options": _HEADLINE_OPTIONS})


def _jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def _rows(db: Session, collection: str, statement: Query, params: Mapping[str, Any]) -> list[RowMapping]:
    """Run STATEMENT with PARAMS; SQL errors become the API's errors."""
    # A savepoint, so a refused search leaves the request's transaction usable (the session emits it lazily:
    # the connection must be asked for inside the block).
    with _translated_errors(collection), db.begin_nested():
        return list(statement.run(db, params).mappings())


@contextmanager
def _translated_errors(collection: str) -> Iterator[None]:
    """The SQL API's errors as the API's: unknown collection (P0002) is 404, a bad argument (22023) is 422 naming
    the field of the request body (the error's DETAIL: an argument's name, or the path into the filter)."""
    try:
        yield
    except DBAPIError as exc:
        translated = _app_error(exc.orig, collection)
        if translated is None:
            raise
        raise translated from None


def _app_error(error: BaseException | None, collection: str) -> InvalidInputError | NotFoundError | None:
    if not isinstance(error, psycopg.Error) or error.diag.message_detail is None:
        return None
    detail = error.diag.message_detail
    if error.sqlstate == "P0002" and detail == "collection":
        return NotFoundError(f"no collection named {collection!r}")
    if error.sqlstate == "22023":
        message = error.diag.message_primary or ""
        reason = message.removeprefix(f"{detail}: ")
        return InvalidInputError.for_field("body." + _FIELDS.get(detail, detail), reason)
    return None


def saved_search_defaults(db: Session, collection: str) -> Any:
    """collection.metadata["search_defaults"] (written by `memora eval --tune --save`), or None."""
    return db.scalar(select(Collection.metadata_["search_defaults"]).where(Collection.name == collection))
