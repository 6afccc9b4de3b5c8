-- Search from psql: BM25 text search, vector search and hybrid search (Reciprocal Rank Fusion of the two).
-- Needs the documents of sql/examples/03-search-setup.sql, chunked and embedded by the worker.
--   psql "$(memora db url)" -f sql/examples/04-search.sql
-- `memora` must be on PATH (the query embedding below comes from `memora embed`).

\set query 'how do I reset my password'

-- BM25: any of the query's terms (after stemming and stop words) may match; rarer terms weigh more.
SELECT external_id, round(score::numeric, 4) AS bm25, left(text, 60) AS text
FROM memora.search_text('search-demo', :'query', 5);

-- A query embedding, made by the collection's own model. psql runs the command and keeps its output, a vector
-- literal such as [0.01,-0.2,...]. Any vector of the collection's dimensions will do, e.g. a stored chunk's:
--   (SELECT embedding FROM memora.embedding WHERE chunk_id = 42 AND version = 1)
\set query_embedding `memora embed --collection search-demo :'query'`

SELECT external_id, round(score::numeric, 4) AS similarity, vector_rank
FROM memora.search_vector('search-demo', :'query_embedding', 5);

-- Hybrid: each result's rank in both retrievers and the fused score (weighted mean of min-max normalised scores).
SELECT external_id, text_rank, vector_rank, round(score::numeric, 4) AS fused
FROM memora.search_hybrid('search-demo', :'query', :'query_embedding', 5);

-- Filters are JSON over the document's metadata (and document.* fields, chunk.* metadata); see docs/sql.md.
SELECT external_id, text_rank, vector_rank
FROM memora.search_hybrid('search-demo', :'query', :'query_embedding', 5,
                          filter => '{"tags": "security", "year": {"$gte": 2026}}');

-- Tuning per query: the weight of each retriever, candidates per retriever, HNSW ef_search.
SELECT external_id, text_rank, vector_rank, round(score::numeric, 4) AS fused
FROM memora.search_hybrid('search-demo', :'query', :'query_embedding', 3,
                          text_weight => 2, vector_weight => 1, candidates => 50, ef_search => 100);

-- Reciprocal Rank Fusion instead: weight / (rrf_k + rank) summed over the retrievers.
SELECT external_id, text_rank, vector_rank, round(score::numeric, 4) AS rrf
FROM memora.search_hybrid('search-demo', :'query', :'query_embedding', 3, fusion => 'rrf', rrf_k => 10);

-- Highlights: the OR query of search_text, for ts_headline.
SELECT external_id, ts_headline('english', text, memora.search_tsquery('english', :'query')) AS highlight
FROM memora.search_text('search-demo', :'query', 1);
