"""What benchmarks/search_quality.py measures Memora's search against, over the same stored chunks.

- BM25 computed here in Python, outside the database, over the lexemes of the chunks' stored tsvectors (title and
  text, as search_text reads them): Lucene's idf ln(1 + (N - df + 0.5) / (df + 0.5)), k1 0.9, b 0.4, tf = the
  term's positions in the chunk; chunk length either the real token count (all positions) or the number of distinct
  lexemes (what memora.bm25_candidates uses). Scored per chunk; a document ranks by its best chunk.
- The common PostgreSQL recipe: ts_rank_cd over websearch_to_tsquery (every term required), and ts_rank_cd over an
  OR of the query's lexemes (memora.search_tsquery).
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from app.eval.metrics import score as score_ranking
from app.eval.service import JudgedQuery, ModeResult

K1, B = 0.9, 0.4
DOCUMENTS = 100


@dataclass
class TermIndex:
    """Every chunk's lexemes with their term frequencies, as postings per lexeme."""

    external_ids: list[str] = field(default_factory=list)  # the document of chunk i
    tokens: list[int] = field(default_factory=list)  # chunk i's token count: all positions of all its lexemes
    distinct: list[int] = field(default_factory=list)  # chunk i's number of distinct lexemes, length(tsv)
    postings: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))  # (chunk i, tf)


def load_index(conn: Connection, collection_id: int) -> TermIndex:
    """Read the collection's tsvectors (lexemes with positions) into memory."""
    rows = conn.execute(
        text(
            "SELECT c.id, d.external_id, u.lexeme, coalesce(cardinality(u.positions), 1) "
            "FROM memora.chunk c JOIN memora.document d ON d.collection_id = c.collection_id AND d.id = c.document_id "
            "CROSS JOIN LATERAL unnest(c.tsv) u WHERE c.collection_id = :c ORDER BY c.id"
        ),
        {"c": collection_id},
    )
    index = TermIndex()
    last_chunk = None
    for chunk_id, external_id, lexeme, tf in rows:
        if chunk_id != last_chunk:
            index.external_ids.append(external_id)
            index.tokens.append(0)
            index.distinct.append(0)
            last_chunk = chunk_id
        i = len(index.external_ids) - 1
        index.tokens[i] += tf
        index.distinct[i] += 1
        index.postings[lexeme].append((i, tf))
    return index


def query_terms(conn: Connection, language: str, queries: list[JudgedQuery]) -> list[list[str]]:
    """Each query's distinct lexemes under the collection's text search configuration, as to_tsvector makes them."""
    statement = text("SELECT array(SELECT DISTINCT lexeme FROM unnest(to_tsvector(CAST(:l AS regconfig), :q)))")
    return [list(conn.execute(statement, {"l": language, "q": q.text}).scalar_one()) for q in queries]


def bm25_rankings(index: TermIndex, terms: list[list[str]], *, real_length: bool) -> list[list[str]]:
    """Per query, the DOCUMENTS best documents by their best chunk's BM25 score."""
    lengths = index.tokens if real_length else index.distinct
    n = len(lengths)
    average = sum(lengths) / n
    norms = [K1 * (1 - B + B * length / average) for length in lengths]
    rankings = []
    for lexemes in terms:
        scores: Counter[int] = Counter()
        for lexeme in lexemes:
            postings = index.postings.get(lexeme, [])
            if not postings:
                continue
            idf = math.log(1 + (n - len(postings) + 0.5) / (len(postings) + 0.5))
            for i, tf in postings:
                scores[i] += idf * tf * (K1 + 1) / (tf + norms[i])
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        documents = list(dict.fromkeys(index.external_ids[i] for i, _ in ranked))
        rankings.append(documents[:DOCUMENTS])
    return rankings


def evaluate_rankings(name: str, queries: list[JudgedQuery], rankings: list[list[str]]) -> ModeResult:
    """Metrics of rankings computed outside the search functions (no latency)."""
    result = ModeResult(name)
    result.scores = [score_ranking(ranking, query.judgments) for query, ranking in zip(queries, rankings, strict=True)]
    return result


def _ranked_by_ts_rank_cd(tsquery: str) -> str:
    return f"""
        SELECT d.external_id
        FROM memora.chunk c
        JOIN memora.document d ON d.collection_id = c.collection_id AND d.id = c.document_id,
             {tsquery} AS q
        WHERE c.collection_id = :c AND c.tsv @@ q
        ORDER BY ts_rank_cd(c.tsv, q) DESC, c.id
        LIMIT :k
    """


# Two fixed statements (no input goes into their text); the query and the language are parameters.
TS_RANK_CD = {
    "ts_rank_cd, websearch_to_tsquery (AND)": text(
        _ranked_by_ts_rank_cd("websearch_to_tsquery(CAST(:l AS regconfig), :q)")
    ),
    "ts_rank_cd, OR of the lexemes": text(_ranked_by_ts_rank_cd("memora.search_tsquery(CAST(:l AS regconfig), :q)")),
}


def ts_rank_cd(
    conn: Connection, name: str, collection_id: int, language: str, queries: list[JudgedQuery], depth: int
) -> ModeResult:
    """The DEPTH best chunks by ts_rank_cd (PostgreSQL's default weights and normalisation), timed per query."""
    statement = TS_RANK_CD[name]
    result = ModeResult(name)
    for query in queries:
        began = time.perf_counter()
        hits = conn.execute(statement, {"c": collection_id, "l": language, "q": query.text, "k": depth}).scalars()
        documents = list(dict.fromkeys(hits))
        result.latencies_ms.append((time.perf_counter() - began) * 1000)
        result.scores.append(score_ranking(documents, query.judgments))
    return result
