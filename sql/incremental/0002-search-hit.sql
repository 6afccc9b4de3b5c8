-- Revision 0002: what every search function returns (sql/idempotent/007-search-fusion.sql, 008-search-api.sql).
-- Incremental: applied once, by revision 0002, and never edited; a change to the type is a new revision.

CREATE TYPE memora.search_hit AS (
    chunk_id bigint,
    document_id bigint,
    external_id text,
    ordinal integer,
    title text,
    text text,
    metadata jsonb,             -- the document's metadata
    chunk_metadata jsonb,       -- the chunk's own: headings, page
    char_start integer,         -- the chunk is document.content[char_start:char_end]
    char_end integer,
    score double precision,     -- what the rows are ordered by: BM25, similarity, or the fused score
    text_rank integer,          -- rank in the BM25 candidates (1 = best), NULL if not among them
    text_score double precision,
    vector_rank integer,        -- rank in the nearest-neighbour candidates, NULL if not among them
    vector_score double precision,  -- similarity: 1 - cosine distance, inner product, or -L2 distance
    vector_distance double precision
);
