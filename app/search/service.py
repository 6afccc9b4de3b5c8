"""Search a collection: check the request, embed the query if needed, call the SQL API, shape the results."""

from __future__ import annotations

import html
import time
from contextlib import closing, suppress
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy import RowMapping
from sqlalchemy.orm import Session

from app.collections import service as collections
from app.config import Settings
from app.db.models import Collection, EmbeddingVersion
from app.errors import InvalidInputError
from app.observe.timing import part
from app.rerank.llm import RerankProviderError
from app.rerank.service import Reranked, candidates_for, get_reranker, rerank
from app.search import query_embedding, repository
from app.search.repository import START, STOP, Vector
from app.search.schemas import (
    Mode,
    RerankScores,
    Scores,
    SearchRequest,
    SearchResponse,
    SearchResult,
    TextScores,
    VectorScores,
    Weights,
)

# The hybrid settings a collection's saved defaults may fill (memora eval --tune --save).
_TUNABLE = {"fusion", "rrf_k", "weights", "candidates"}
_NOT_READ = object()


def search(db: Session, settings: Settings, name: str, request: SearchRequest) -> SearchResponse:
    """Run one search of collection NAME."""
    started = time.perf_counter()
    if request.k > settings.search_max_k:
        raise InvalidInputError.for_field("body.k", f"must be at most {settings.search_max_k} (MEMORA_SEARCH_MAX_K)")
    check_query_length(settings, request.query)
    query = request.query if request.query is not None and request.query.strip() else None
    mode: Mode = request.mode
    if mode == "text":
        if query is None:
            raise InvalidInputError.for_field("body.query", "text search needs a query with words in it")
        if request.embedding is not None:
            raise InvalidInputError.for_field(
                "body.embedding", "text search does not use an embedding; choose mode vector or hybrid"
            )
    elif query is None and request.embedding is None:
        raise InvalidInputError.for_field("body.query", "give a query with words in it, an embedding, or both")
    if mode == "text" and request.version is not None:
        raise InvalidInputError.for_field("body.version", "text search reads no vectors; choose mode vector or hybrid")
    if request.rerank is not None and query is None:
        raise InvalidInputError.for_field("body.rerank", "reranking needs a query with words in it")
    if request.rerank is not None and "sql" in request.include:
        raise InvalidInputError.for_field(
            "body.include",
            "sql cannot reproduce a rerank (its order comes from the reranker, not the database); "
            "leave out sql or rerank",
        )
    filter_ = request.filter or None
    fetch = candidates_for(request.k, request.rerank)
    # Highlights come with the hits, in the search's own statement, unless a reranker keeps fewer rows than it reads.
    highlight = query if "highlights" in request.include and request.rerank is None else None

    embedding: Vector | None = None
    saved: Any = _NOT_READ
    # The embedding version searched, pinned once looked up: the query is embedded with its model and the search
    # reads its vectors, even if another version becomes active in between.
    version: int | None = None
    if request.embedding is not None:
        embedding = np.asarray(request.embedding, dtype=np.float32)
        if mode != "text":
            with part("lookup"):
                collection = collections.get(db, name)
                saved = collection.metadata_.get("search_defaults")
                version, _ = _version(db, collection, request.version)
    elif mode == "vector" or (mode == "hybrid" and request.weights.vector > 0):
        assert query is not None
        started_embedding = query_embedding.start(settings, name, query)
        with part("lookup"):
            collection = collections.get(db, name)
            saved = collection.metadata_.get("search_defaults")  # read now: embedding may end the transaction
            version, model = _version(db, collection, request.version)
        embedding = query_embedding.finish(db, settings, collection, query, started_embedding, model)
    if mode == "hybrid" and query is None:
        mode = "vector"
    if mode == "hybrid" and _TUNABLE - request.model_fields_set:
        if saved is _NOT_READ:
            with part("lookup"):
                saved = repository.saved_search_defaults(db, name)
        request = _with_saved_defaults(request, saved)

    statement = _search(name, request, mode, query, embedding, fetch, filter_, highlight, version)
    with part("search"):
        rows = repository.run(db, statement)
    sql = repository.as_sql(db, statement) if "sql" in request.include else None

    reranked: dict[int, Reranked[RowMapping]] = {}
    if request.rerank is not None and rows:
        assert query is not None
        # End the read before calling the reranker's server, as before calling an embedding model.
        db.commit()
        with closing(get_reranker(request.rerank, settings)) as reranker, part("rerank"):
            try:
                outcome = rerank(
                    reranker, query, rows, request.rerank.top_n, lambda row: f"{row['title']}\n{row['text']}"
                )
            except RerankProviderError as exc:
                raise exc.unknown_model("body.rerank.model", request.rerank.model) from None
        rows = [item.hit for item in outcome.hits[: request.k]]
        reranked = {item.hit["chunk_id"]: item for item in outcome.hits[: request.k]}

    highlights: dict[int, str | None] = {}
    if highlight is not None:
        highlights = {row["chunk_id"]: row["headline"] for row in rows}
    elif "highlights" in request.include and query is not None and rows:
        with part("highlight"):
            highlights = repository.headlines(db, name, [row["chunk_id"] for row in rows], query)
    results = [_result(row, mode, set(request.include), highlights, reranked.get(row["chunk_id"])) for row in rows]
    took_ms = round((time.perf_counter() - started) * 1000, 2)
    response = SearchResponse(
        results=results, mode=mode, k=request.k, embedding_version=None if mode == "text" else version, took_ms=took_ms
    )
    if sql is not None:
        response.sql = sql  # set only when asked for: the route leaves unset fields out
    return response


def _version(db: Session, collection: Collection, requested: int | None) -> tuple[int, query_embedding.Model]:
    """The embedding version a search of COLLECTION reads (REQUESTED, else the active one) and its model."""
    if requested is None or requested == collection.active_version:
        active = (collection.embedding_provider, collection.embedding_model, collection.dimensions)
        return collection.active_version, active
    row = db.get(EmbeddingVersion, (collection.id, requested))
    if row is None:
        raise InvalidInputError.for_field(
            "body.version", f"collection {collection.name!r} has no embedding version {requested}"
        )
    return row.number, (row.embedding_provider, row.embedding_model, row.dimensions)


def _search(
    name: str,
    request: SearchRequest,
    mode: Mode,
    query: str | None,
    embedding: Vector | None,
    fetch: int,
    filter_: Any,
    highlight: str | None,
    version: int | None,
) -> repository.Search:
    """The search MODE asks for, in embedding VERSION; with HIGHLIGHT, its rows each with their `headline`."""
    if mode == "text":
        assert query is not None
        return repository.text_search(name, query, fetch, filter_, highlight=highlight)
    if mode == "vector":
        assert embedding is not None
        return repository.vector_search(
            name,
            embedding,
            fetch,
            filter_,
            ef_search=request.ef_search,
            exact=request.exact,
            version=version,
            highlight=highlight,
        )
    assert query is not None
    return repository.hybrid_search(
        name,
        query,
        embedding,
        fetch,
        filter_,
        fusion=request.fusion,
        rrf_k=request.rrf_k,
        text_weight=request.weights.text,
        vector_weight=request.weights.vector,
        candidates=request.candidates,
        ef_search=request.ef_search,
        exact=request.exact,
        version=version,
        highlight=highlight,
    )


def check_query_length(settings: Settings, query: str | None, field: str = "body.query") -> None:
    """A 422 for a query longer than MEMORA_MAX_QUERY_CHARS: the cost of parsing, embedding and matching a query
    grows with it (a 10 MB query took 12 s and 739 MiB), and no question needs pages of words."""
    if query is not None and len(query) > settings.max_query_chars:
        reason = f"{len(query)} characters; the limit is {settings.max_query_chars} (MEMORA_MAX_QUERY_CHARS)"
        raise InvalidInputError.for_field(field, reason)


def _with_saved_defaults(request: SearchRequest, saved: Any) -> SearchRequest:
    """REQUEST with the hybrid settings it leaves unset taken from SAVED, the collection's defaults that
    `memora eval --tune --save` stores in collection.metadata["search_defaults"]. A malformed entry is ignored."""
    unset = _TUNABLE - request.model_fields_set
    if not isinstance(saved, dict):
        return request
    update: dict[str, Any] = {}
    if "fusion" in unset and saved.get("fusion") in ("convex", "rrf"):
        update["fusion"] = saved["fusion"]
    if "rrf_k" in unset and isinstance(saved.get("rrf_k"), int) and 0 <= saved["rrf_k"] <= 100_000:
        update["rrf_k"] = saved["rrf_k"]
    weights = saved.get("weights")
    if "weights" in unset and isinstance(weights, dict):
        with suppress(ValidationError):
            update["weights"] = Weights.model_validate(weights)
    factor = saved.get("candidates_factor")
    if "candidates" in unset and isinstance(factor, int | float) and 1 <= factor <= 100:
        update["candidates"] = min(10_000, max(request.k, round(factor * request.k)))
    return request.model_copy(update=update) if update else request


def _result(
    row: RowMapping,
    mode: Mode,
    include: set[str],
    highlights: dict[int, str | None],
    reranked: Reranked[RowMapping] | None = None,
) -> SearchResult:
    """A result with the fields INCLUDE asks for; the others are left unset, so the response leaves them out."""
    fields: dict[str, Any] = {
        key: row[key] for key in ("chunk_id", "document_id", "external_id", "ordinal", "char_start", "char_end")
    }
    fields |= {"title": row["title"], "score": row["score"]}
    if reranked is not None and reranked.score is not None:
        fields["score"] = reranked.score
    if "text" in include:
        fields["text"] = row["text"]
    if "metadata" in include:
        fields["metadata"] = row["metadata"]
        fields["chunk_metadata"] = row["chunk_metadata"]
    if "highlights" in include:
        fields["highlight"] = _highlight(highlights.get(row["chunk_id"]))
    if "scores" in include:
        fields["scores"] = _scores(row, mode)
        if reranked is not None and reranked.score is not None:
            fields["scores"].rerank = RerankScores(
                score=reranked.score, rank=reranked.rank, original_rank=reranked.original_rank
            )
    return SearchResult(**fields)


def _scores(row: RowMapping, mode: Mode) -> Scores:
    text = None
    if row["text_rank"] is not None:
        text = TextScores(rank=row["text_rank"], score=row["text_score"])
    vector = None
    if row["vector_rank"] is not None:
        vector = VectorScores(rank=row["vector_rank"], score=row["vector_score"], distance=row["vector_distance"])
    if mode == "text":
        return Scores(text=text)
    if mode == "vector":
        return Scores(vector=vector)
    return Scores(text=text, vector=vector, fused=row["score"])


def _highlight(headline: str | None) -> str | None:
    """ts_headline's passage as safe HTML: the text escaped, the matches in <b></b>."""
    if headline is None:
        return None
    return html.escape(headline, quote=False).replace(START, "<b>").replace(STOP, "</b>")
