"""The peers of benchmarks/search_peers.py: their tables, built beside Memora's in the scratch database, and every
method's SQL. Each recipe is written out here from where it is published (named in its comment), adapted only to
this table's name, vector(384) and the 'english' configuration, and to return (id, external_id) rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from app.db.models import SCHEMA, version_table
from app.eval.repository import FusionParams
from app.ingest.service import DocumentInput

K = 10  # rows asked for in the timed pass
QUALITY_K = 100  # rows asked of the recipes in the quality pass (recall@100)
SIDE = 100  # candidates a side in the posting table's RRF, and rows of its BM25
BM25 = "posting-table BM25"
RRF = "RRF(posting BM25, HNSW)"
HYBRID = "memora.search_hybrid (default)"
TEXT = "memora.search_text"


def table(corpus: str, kind: str) -> sql.Identifier:
    """A table (or function) of the peers' for CORPUS: peers.<corpus>_<kind>."""
    return sql.Identifier("peers", f"{corpus}_{kind}")


def names(corpus: str) -> dict[str, sql.Identifier]:
    return {kind: table(corpus, kind) for kind in ("document", "posting", "term", "stats", "hybrid_search")}


def document_texts(documents: Sequence[DocumentInput]) -> list[str]:
    """The content of the peers' row of each document: its title and text."""
    return [f"{d.title}\n{d.content}" if d.title else d.content for d in documents]


def load_peers(
    url: str, corpus: str, collection_id: int, documents: Sequence[DocumentInput], vectors: np.ndarray
) -> dict[str, int]:
    """The peers' one-row-per-document table of CORPUS (DOCUMENTS, with VECTORS of their document_texts) and its
    indexes, Supabase's hybrid_search on it, and the posting side table built from the tsvectors of the chunks of
    Memora's collection COLLECTION_ID; the rows of each."""
    tables = names(corpus)
    contents = document_texts(documents)
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("CREATE SCHEMA IF NOT EXISTS peers")
        # The table of Supabase's guide (a stored tsvector and its GIN index; HNSW with vector_ip_ops, since its
        # recipe orders by <#>) and of pgvector-python's example (GIN over to_tsvector('english', content); <=>).
        conn.execute(sql.SQL("""
            CREATE TABLE {document} (
                id bigint PRIMARY KEY,
                external_id text NOT NULL,
                content text NOT NULL,
                fts tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
                embedding vector(384) NOT NULL
            )""").format(**tables))  # fmt: skip
        with conn.cursor().copy(
            sql.SQL("COPY {document} (id, external_id, content, embedding) FROM STDIN (FORMAT BINARY)").format(**tables)
        ) as copy:
            copy.set_types(["int8", "text", "text", "vector"])
            for number, (document, content, vector) in enumerate(zip(documents, contents, vectors, strict=True)):
                copy.write_row((number + 1, document.external_id, content, vector))
        for index in ("USING gin (fts)", "USING gin (to_tsvector('english', content))",
                      "USING hnsw (embedding vector_ip_ops)", "USING hnsw (embedding vector_cosine_ops)"):  # fmt: skip
            conn.execute(sql.SQL("CREATE INDEX ON {document} " + index).format(**tables))
        # Supabase's guide, "Hybrid search" (supabase.com/docs/guides/ai/hybrid-search): its hybrid_search function
        # as written there, on this table (vector(384), and 'english' given to websearch_to_tsquery, which the guide
        # leaves to default_text_search_config).
        conn.execute(sql.SQL("""
            CREATE FUNCTION {hybrid_search}(
                query_text text,
                query_embedding vector(384),
                match_count int,
                full_text_weight float = 1,
                semantic_weight float = 1,
                rrf_k int = 50
            )
            RETURNS SETOF {document}
            LANGUAGE sql
            AS $$
            WITH full_text AS (
                SELECT id,
                       row_number() OVER (ORDER BY ts_rank_cd(fts, websearch_to_tsquery('english', query_text)) DESC)
                           AS rank_ix
                FROM {document}
                WHERE fts @@ websearch_to_tsquery('english', query_text)
                ORDER BY rank_ix
                LIMIT least(match_count, 30) * 2
            ),
            semantic AS (
                SELECT id, row_number() OVER (ORDER BY embedding <#> query_embedding) AS rank_ix
                FROM {document}
                ORDER BY rank_ix
                LIMIT least(match_count, 30) * 2
            )
            SELECT {document}.*
            FROM full_text
            FULL OUTER JOIN semantic ON full_text.id = semantic.id
            JOIN {document} ON coalesce(full_text.id, semantic.id) = {document}.id
            ORDER BY coalesce(1.0 / (rrf_k + full_text.rank_ix), 0.0) * full_text_weight
                   + coalesce(1.0 / (rrf_k + semantic.rank_ix), 0.0) * semantic_weight DESC
            LIMIT least(match_count, 30)
            $$""").format(**tables))  # fmt: skip
        conn.execute(sql.SQL("VACUUM ANALYZE {document}").format(**tables))
        # Memora's tables too, its postings among them: an index-only scan of a page VACUUM has not marked
        # all-visible reads the heap as well.
        conn.execute(
            "VACUUM ANALYZE memora.document, memora.chunk, memora.posting, memora.embedding, memora.term_stats"
        )
        chunks = conn.execute("SELECT count(*) FROM memora.chunk WHERE collection_id = %s",
                              (collection_id,)).fetchone()[0]  # type: ignore[index]  # fmt: skip
    postings = load_postings(url, corpus, collection_id)
    return {"documents": len(documents), "chunks": chunks, "postings": postings}


def load_postings(url: str, corpus: str, collection_id: int) -> int:
    """The posting side table of CORPUS, with its terms and statistics, built from the tsvectors of the chunks of
    Memora's collection COLLECTION_ID; the number of postings."""
    tables = names(corpus)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS peers")
        # The posting side table: one row per lexeme and chunk with its tf (positions) and the chunk's length
        # (distinct lexemes, as memora.bm25_candidates counts it), in a B-tree that serves index-only scans; each
        # lexeme's df and the collection's N and mean length beside it.
        conn.execute(sql.SQL("""
            CREATE TABLE {posting} (lexeme text, chunk_id bigint, tf integer NOT NULL, len integer NOT NULL)
            """).format(**tables))  # fmt: skip
        conn.execute(sql.SQL("""
            INSERT INTO {posting}
            SELECT u.lexeme, c.id, coalesce(cardinality(u.positions), 1), length(c.tsv)
            FROM memora.chunk c CROSS JOIN LATERAL unnest(c.tsv) u
            WHERE c.collection_id = %s""").format(**tables), (collection_id,))  # fmt: skip
        # The key after the rows: one sorted build instead of millions of insertions into a B-tree (same index).
        conn.execute(sql.SQL("ALTER TABLE {posting} ADD PRIMARY KEY (lexeme, chunk_id) INCLUDE (tf, len)").format(
            **tables))  # fmt: skip
        conn.execute(sql.SQL("CREATE TABLE {term} (lexeme text PRIMARY KEY, df integer NOT NULL)").format(**tables))
        conn.execute(
            sql.SQL("INSERT INTO {term} SELECT lexeme, count(*) FROM {posting} GROUP BY lexeme").format(**tables)
        )
        conn.execute(sql.SQL("""
            CREATE TABLE {stats} AS
            SELECT count(*)::double precision AS chunks, avg(length(tsv))::double precision AS avg_len
            FROM memora.chunk WHERE collection_id = %s""").format(**tables), (collection_id,))  # fmt: skip
        conn.execute(sql.SQL("VACUUM ANALYZE {posting}, {term}, {stats}").format(**tables))
        return conn.execute(sql.SQL("SELECT count(*) FROM {posting}").format(**tables)).fetchone()[0]  # type: ignore[index,no-any-return]


# The posting table's BM25 (Lucene's idf, k1 and b of the collection, OR of the query's lexemes), its SIDE best
# chunks: the "20-line GROUP BY query" of issue 15. Ties broken by chunk id, as memora.bm25_candidates does.
POSTING_BM25 = """
    SELECT p.chunk_id,
           sum(t.idf * p.tf * (%(k1)s + 1) / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.len / s.avg_len))) AS score
    FROM (SELECT term.lexeme, ln(1 + (s.chunks - term.df + 0.5) / (term.df + 0.5)) AS idf
          FROM {term} term CROSS JOIN {stats} s
          WHERE term.lexeme = ANY (ARRAY(SELECT DISTINCT u.lexeme
                                         FROM unnest(to_tsvector('english', %(query)s)) u))) t
    JOIN {posting} p ON p.lexeme = t.lexeme
    CROSS JOIN {stats} s
    GROUP BY p.chunk_id
    ORDER BY score DESC, p.chunk_id
    LIMIT 100
"""
# The chunks' documents, for the statements that rank chunks by hand.
WITH_DOCUMENTS = """
    JOIN memora.chunk c ON c.collection_id = %(collection_id)s AND c.id = ranked.chunk_id
    JOIN memora.document d ON d.collection_id = c.collection_id AND d.id = c.document_id
    ORDER BY ranked.score DESC, ranked.chunk_id
"""


@dataclass(frozen=True)
class Method:
    """One way to search: a statement returning (key, external_id) rows best first, or a mode of `memora eval`."""

    name: str
    statement: sql.Composable
    quality_k: int  # rows its quality pass asks for (recipes); Memora's modes go through rank_documents instead
    mode: str | None = None  # text, vector or hybrid: evaluated as `memora eval` evaluates it
    params: FusionParams = field(default_factory=FusionParams)
    setup: tuple[str, ...] = ()  # run once on its connection
    needs_embedding: bool = True


def methods(corpus: str, collection_id: int) -> list[Method]:
    """Every method measured on CORPUS (Memora's collection COLLECTION_ID), Memora's first."""
    tables = names(corpus)
    partition = sql.Identifier(SCHEMA, version_table(collection_id, 1))

    def compose(text: str) -> sql.Composed:
        return sql.SQL(text).format(**tables)

    memora = "SELECT chunk_id, external_id FROM memora.{}"
    bm25 = compose(POSTING_BM25)
    return [
        Method("memora.search_text", sql.SQL(memora.format("search_text(%(collection)s, %(query)s, %(k)s)")), 0,
               "text", needs_embedding=False),
        Method("memora.search_vector",
               sql.SQL(memora.format("search_vector(%(collection)s, %(embedding)s, %(k)s)")), 0, "vector"),
        Method("memora.search_hybrid (default)",
               sql.SQL(memora.format("search_hybrid(%(collection)s, %(query)s, %(embedding)s, %(k)s)")), 0, "hybrid"),
        Method("memora.search_hybrid (rrf)",
               sql.SQL(memora.format("search_hybrid(%(collection)s, %(query)s, %(embedding)s, %(k)s, "
                                     "fusion => 'rrf')")), 0, "hybrid", FusionParams(fusion="rrf")),
        Method(BM25, sql.SQL("SELECT ranked.chunk_id, d.external_id FROM ({}) ranked {}").format(
            bm25, sql.SQL(WITH_DOCUMENTS)), QUALITY_K, needs_embedding=False),
        # RRF (k 60) of the posting BM25's 100 and the HNSW index's 100 nearest chunks, read from the collection's
        # partition with the expression its HNSW index is built on (the bare column would be an exact scan). An HNSW
        # scan returns at most hnsw.ef_search rows, hence 100 on its connection. For 100 rows pgvector's cost estimate
        # has the planner prefer an exact scan and a top-N sort below some thousands of vectors (EXPLAIN at 3,341
        # chunks), so sequential scans are off on this connection: the recipe uses its index at every size.
        Method(RRF, sql.SQL("""
            WITH bm25 AS ({bm25}),
            nearest AS (
                SELECT e.chunk_id, (e.embedding::vector(384)) <=> %(embedding)s::vector(384) AS distance
                FROM {partition} e
                ORDER BY (e.embedding::vector(384)) <=> %(embedding)s::vector(384)
                LIMIT 100
            ),
            text_side AS (SELECT chunk_id, row_number() OVER (ORDER BY score DESC, chunk_id) AS rank FROM bm25),
            vector_side AS (SELECT chunk_id, row_number() OVER (ORDER BY distance, chunk_id) AS rank FROM nearest)
            SELECT ranked.chunk_id, d.external_id
            FROM (SELECT coalesce(t.chunk_id, v.chunk_id) AS chunk_id,
                         coalesce(1.0 / (60 + t.rank), 0) + coalesce(1.0 / (60 + v.rank), 0) AS score
                  FROM text_side t FULL OUTER JOIN vector_side v ON v.chunk_id = t.chunk_id
                  ORDER BY score DESC, chunk_id
                  LIMIT %(k)s) ranked
            """).format(bm25=bm25, partition=partition) + sql.SQL(WITH_DOCUMENTS), 2 * SIDE,
               setup=("SET hnsw.ef_search = 100", "SET enable_seqscan = off")),
        Method("Supabase hybrid_search", compose(
            "SELECT id, external_id FROM {hybrid_search}(%(query)s, %(embedding)s, %(k)s)"), QUALITY_K),
        # pgvector-python, examples/hybrid_search/rrf.py (examples/hybrid_search_rrf.py before): 20 a side, RANK(),
        # k 60, plainto_tsquery; its LIMIT 5 is k here, and the documents' external ids are joined on.
        Method("pgvector-python RRF example", compose("""
            WITH semantic_search AS (
                SELECT id, RANK () OVER (ORDER BY embedding <=> %(embedding)s) AS rank
                FROM {document}
                ORDER BY embedding <=> %(embedding)s
                LIMIT 20
            ),
            keyword_search AS (
                SELECT id, RANK () OVER (ORDER BY ts_rank_cd(to_tsvector('english', content), query) DESC)
                FROM {document}, plainto_tsquery('english', %(query)s) query
                WHERE to_tsvector('english', content) @@ query
                ORDER BY ts_rank_cd(to_tsvector('english', content), query) DESC
                LIMIT 20
            )
            SELECT fused.id, d.external_id
            FROM (SELECT COALESCE(semantic_search.id, keyword_search.id) AS id,
                         COALESCE(1.0 / (60 + semantic_search.rank), 0.0)
                         + COALESCE(1.0 / (60 + keyword_search.rank), 0.0) AS score
                  FROM semantic_search
                  FULL OUTER JOIN keyword_search ON semantic_search.id = keyword_search.id
                  ORDER BY score DESC
                  LIMIT %(k)s) fused
            JOIN {document} d ON d.id = fused.id
            ORDER BY fused.score DESC
            """), QUALITY_K),
        # PostgreSQL's documentation, "Ranking Search Results": ts_rank_cd over the stored tsvector, every term of
        # websearch_to_tsquery required.
        Method("ts_rank_cd, websearch_to_tsquery", compose("""
            SELECT id, external_id
            FROM {document}, websearch_to_tsquery('english', %(query)s) q
            WHERE fts @@ q
            ORDER BY ts_rank_cd(fts, q) DESC, id
            LIMIT %(k)s
            """), QUALITY_K, needs_embedding=False),
    ]  # fmt: skip
