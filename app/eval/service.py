"""Evaluating a collection's search against judged queries (BEIR format): read, embed, search, score, time.

Latency is measured per query with a monotonic clock around the SQL call(s) that rank its documents, rows fetched,
plus, for vector and hybrid, the query's share of its embedding batch (the batch's time divided by its queries).
Queries are embedded in batches, as a service answering many queries would; a query embedded on its own costs more
than its share (benchmarks/search_quality.py measures both).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from app.embeddings.base import Embedder, Vectors
from app.errors import InvalidInputError, NotFoundError, UnreadableFileError
from app.eval import repository
from app.eval.metrics import Judgments, QueryScores, mean_scores, percentile, score
from app.eval.repository import FUSIONS, MODES, FusionParams

DOCUMENTS = 100  # ranked documents a query needs for recall@100
DEFAULT_DEPTH = 200  # chunks asked for first; more (up to MAX_K) when they hold fewer than DOCUMENTS documents
MAX_K = 1000  # the most the search functions return at once


@dataclass(frozen=True)
class JudgedQuery:
    """A judged query: its id, its text, and the grades of the documents judged for it."""

    id: str
    text: str
    judgments: Judgments


@dataclass
class ModeResult:
    """Per-query metrics and latencies of one search mode."""

    mode: str
    scores: list[QueryScores] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    rankings: list[list[str]] = field(default_factory=list)  # each query's documents, best first (for curves)

    def summary(self) -> dict[str, float | int]:
        """Mean metrics, p50/p95 latency in ms and the number of queries, as `memora eval --json` prints them."""
        return {
            **mean_scores(self.scores),
            "p50_ms": percentile(self.latencies_ms, 50),
            "p95_ms": percentile(self.latencies_ms, 95),
            "queries": len(self.scores),
        }


def parse_modes(value: str) -> list[str]:
    """'text,hybrid' -> ['text', 'hybrid']; unknown modes are an error."""
    modes = list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or not modes:
        given = ", ".join(map(repr, unknown)) or "none given"
        raise InvalidInputError.for_field("mode", f"{given}; choose from {', '.join(MODES)}")
    return modes


def parse_fusion(value: str) -> str:
    """A fusion search_hybrid_v1 knows: convex or rrf."""
    if value not in FUSIONS:
        raise InvalidInputError.for_field("fusion", f"{value!r}; choose from {', '.join(FUSIONS)}")
    return value


def load_queries(path: Path) -> dict[str, str]:
    """A BEIR queries.jsonl: one {"_id": ..., "text": ...} a line; id -> text."""
    queries: dict[str, str] = {}
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UnreadableFileError.at_line(str(path), number, f"not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise UnreadableFileError.at_line(str(path), number, "JSON nested too deeply to parse") from None
        if not isinstance(item, dict) or not isinstance(item.get("text"), str) or item.get("_id") is None:
            raise UnreadableFileError.at_line(str(path), number, 'expected an object with "_id" and "text"')
        queries[str(item["_id"])] = item["text"]
    return queries


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """A BEIR qrels TSV (header `query-id corpus-id score`) or TREC qrels (`query 0 document grade`)."""
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(_lines(path), start=1):
        fields = line.split()
        if not fields or (number == 1 and fields[0] == "query-id"):
            continue
        if len(fields) not in (3, 4):
            raise UnreadableFileError.at_line(str(path), number, "expected query-id, corpus-id and score")
        query_id, document_id, grade = fields[0], fields[-2], fields[-1]
        try:
            qrels.setdefault(query_id, {})[document_id] = int(grade)
        except ValueError:
            raise UnreadableFileError.at_line(str(path), number, f"score {grade!r} is not an integer") from None
    return qrels


def judged_queries(queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> list[JudgedQuery]:
    """The queries that have judgments, in the order of the queries file."""
    return [JudgedQuery(query_id, text, qrels[query_id]) for query_id, text in queries.items() if query_id in qrels]


def embed_queries(embedder: Embedder, texts: Sequence[str], batch_size: int) -> tuple[Vectors, list[float]]:
    """The texts' vectors, embedded BATCH_SIZE at a time, and each text's share of its batch's time in ms."""
    parts: list[Vectors] = []
    shares: list[float] = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        began = time.perf_counter()
        parts.append(embedder.embed(batch))
        shares += [(time.perf_counter() - began) * 1000 / len(batch)] * len(batch)
    if not parts:
        return np.zeros((0, embedder.dimensions), dtype=np.float32), []
    return np.concatenate(parts), shares


def rank_documents(
    conn: Connection,
    mode: str,
    collection: str,
    query: str,
    embedding: Vectors | None,
    depth: int,
    params: FusionParams,
    documents: int = DOCUMENTS,
) -> list[str]:
    """Distinct documents of the best chunks, best first (a document ranks where its first chunk does). Asks for
    DEPTH chunks, and again for twice as many (up to MAX_K) while they hold fewer than DOCUMENTS documents."""
    k = depth
    while True:
        # Hybrid needs at least k candidates per side.
        at_k = replace(params, candidates=max(params.candidates, k)) if params.candidates else params
        hits = _search(conn, mode, collection, query, embedding, k, at_k)
        ranked = list(dict.fromkeys(hits))
        if len(ranked) >= documents or len(hits) < k or k >= MAX_K:
            return ranked
        k = min(2 * k, MAX_K)


def evaluate_mode(
    conn: Connection,
    mode: str,
    collection: str,
    queries: Sequence[JudgedQuery],
    embeddings: Vectors | None,
    embed_ms: Sequence[float],
    *,
    depth: int = DEFAULT_DEPTH,
    params: FusionParams | None = None,
    documents: int = DOCUMENTS,
    advance: Callable[[], None] | None = None,
) -> ModeResult:
    """Run every query in one mode and score its ranking; EMBEDDINGS (and EMBED_MS) are needed except for text.
    DEPTH and DOCUMENTS as in rank_documents (DOCUMENTS 0: the DEPTH chunks' documents, as a caller asking for
    DEPTH chunks gets them)."""
    if mode != "text" and embeddings is None:
        raise ValueError(f"{mode} search needs the queries' embeddings")
    params = params or FusionParams()
    result = ModeResult(mode)
    for i, query in enumerate(queries):
        embedding = embeddings[i] if embeddings is not None and mode != "text" else None
        began = time.perf_counter()
        ranking = rank_documents(conn, mode, collection, query.text, embedding, depth, params, documents)
        elapsed_ms = (time.perf_counter() - began) * 1000
        result.latencies_ms.append(elapsed_ms + (embed_ms[i] if mode != "text" else 0.0))
        result.scores.append(score(ranking, query.judgments))
        result.rankings.append(ranking[: max(documents, DOCUMENTS)])
        if advance is not None:
            advance()
    return result


def _search(
    conn: Connection, mode: str, collection: str, query: str, embedding: Vectors | None, k: int, params: FusionParams
) -> list[str]:
    try:
        return repository.search(conn, mode, collection, query, embedding, k, params)
    except DBAPIError as exc:
        state = getattr(exc.orig, "sqlstate", None)
        message = str(getattr(getattr(exc.orig, "diag", None), "message_primary", None) or exc.orig)
        conn.rollback()
        if state == "P0002":
            raise NotFoundError(message) from None
        if state == "22023":
            raise InvalidInputError(message) from None
        raise


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise InvalidInputError.about_file(str(path), "does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableFileError.about_file(str(path), f"cannot be read ({exc})") from None
