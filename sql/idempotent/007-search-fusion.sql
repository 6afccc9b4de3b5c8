-- requires: 0002 (memora.search_hit, from sql/incremental/0002-search-hit.sql)
--
-- Hybrid search: BM25 and nearest-neighbour candidates fused into one ranking, by a convex combination of normalised
-- scores or by Reciprocal Rank Fusion. search_text_v1 and the wrappers of 008-search-api.sql run through it.

CREATE OR REPLACE FUNCTION memora.min_max(value double precision, low double precision, high double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN high > low THEN (value - low) / (high - low) WHEN value IS NOT NULL THEN 1 END $$;

COMMENT ON FUNCTION memora.min_max(double precision, double precision, double precision) IS
    'VALUE scaled from [LOW, HIGH] to [0, 1]; 1 when LOW = HIGH, NULL when VALUE is NULL.';

-- The columns of a search hit that come from the chunk and its document. Inlined where it is called (a SQL function
-- with no SET clause), and OFFSET 0 keeps it a subquery: each hit is one probe by key, where a join of k rows that a
-- generic plan cannot count may be planned as a hash join over every chunk of the collection.
CREATE OR REPLACE FUNCTION memora.search_hit_row(collection_id bigint, chunk_id bigint)
RETURNS TABLE (document_id bigint, external_id text, ordinal integer, title text, text text, metadata jsonb,
               chunk_metadata jsonb, char_start integer, char_end integer)
LANGUAGE sql STABLE
AS $$
    SELECT d.id, d.external_id, ch.ordinal, ch.title, ch.text, d.metadata, ch.metadata, ch.char_start, ch.char_end
    FROM memora.chunk ch
    JOIN memora.document d ON d.collection_id = ch.collection_id AND d.id = ch.document_id
    WHERE ch.collection_id = search_hit_row.collection_id AND ch.id = search_hit_row.chunk_id
    OFFSET 0
$$;

COMMENT ON FUNCTION memora.search_hit_row(bigint, bigint) IS
    'The chunk''s and its document''s columns of a search hit (memora.search_hit).';

CREATE OR REPLACE FUNCTION memora.search_hybrid_v2(
    collection text,
    query text,
    query_embedding vector,
    k integer,
    filter jsonb DEFAULT NULL,
    fusion text DEFAULT 'convex',
    rrf_k integer DEFAULT 60,
    text_weight double precision DEFAULT 1,
    vector_weight double precision DEFAULT 1,
    candidates integer DEFAULT NULL,
    ef_search integer DEFAULT NULL,
    exact boolean DEFAULT false,
    version integer DEFAULT NULL
)
RETURNS SETOF memora.search_hit
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- One plan of the RETURN QUERY per session. PostgreSQL would plan it again on every call (a custom plan looks
-- cheaper, as it drops the candidate list not used), which cost 0.3-0.5 ms of a 1.7 ms vector search.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    c memora.collection := memora.search_collection(collection);
    depth integer := coalesce(candidates, 4 * k);
    use_text boolean := coalesce(btrim(query), '') <> '' AND text_weight > 0;
    use_vector boolean := query_embedding IS NOT NULL AND vector_weight > 0;
    v record;
BEGIN
    PERFORM memora.check_search_arguments(c, k, ef_search, NULL);
    SELECT * INTO v FROM memora.search_version(c, version, query_embedding);
    IF depth < k OR depth > 10000 THEN
        PERFORM memora.argument_error('candidates', 'must be between k and 10000');
    ELSIF fusion IS NULL OR fusion NOT IN ('convex', 'rrf') THEN
        PERFORM memora.argument_error('fusion', 'must be convex or rrf');
    ELSIF rrf_k IS NULL OR rrf_k < 0 THEN
        PERFORM memora.argument_error('rrf_k', 'must be 0 or more');
    ELSIF text_weight IS NULL OR text_weight < 0 OR text_weight = 'Infinity' THEN
        PERFORM memora.argument_error('text_weight', 'must be a finite number, 0 or more');
    ELSIF vector_weight IS NULL OR vector_weight < 0 OR vector_weight = 'Infinity' THEN
        PERFORM memora.argument_error('vector_weight', 'must be a finite number, 0 or more');
    ELSIF NOT use_text AND NOT use_vector THEN
        PERFORM memora.argument_error('query', 'give a query text, a query embedding, or both');
    END IF;
    RETURN QUERY
    WITH lexical AS MATERIALIZED (
        SELECT b.chunk_id, b.rank, b.score
        FROM memora.bm25_candidates(c.id, query, depth, filter) b
        WHERE use_text
    ),
    semantic AS MATERIALIZED (
        SELECT n.chunk_id, n.rank, n.distance, memora.vector_similarity(v.metric, n.distance) AS similarity
        FROM memora.vector_candidates(c.id, query_embedding, depth, filter, ef_search, exact,
                                      coalesce(version, memora.active_version(c))) n
        WHERE use_vector
    ),
    fused AS (
        SELECT coalesce(l.chunk_id, s.chunk_id) AS chunk_id,
               CASE fusion
                   WHEN 'rrf' THEN
                       coalesce(text_weight / (rrf_k + l.rank), 0) + coalesce(vector_weight / (rrf_k + s.rank), 0)
                   -- Each list's scores min-max normalised to [0, 1] (all 1 if they are equal); a chunk absent from
                   -- a list gets 0 there, the least of what made the list.
                   ELSE (text_weight * coalesce(memora.min_max(l.score, lr.low, lr.high), 0)
                         + vector_weight * coalesce(memora.min_max(s.similarity, sr.low, sr.high), 0))
                        / (text_weight + vector_weight)
               END AS score,
               l.rank AS text_rank, l.score AS text_score, s.rank AS vector_rank, s.similarity, s.distance
        FROM lexical l FULL JOIN semantic s ON s.chunk_id = l.chunk_id
        -- Each list's range, by an aggregate over it (a window over each list cost a little more).
        CROSS JOIN (SELECT min(x.score) AS low, max(x.score) AS high FROM lexical x) lr
        CROSS JOIN (SELECT min(y.similarity) AS low, max(y.similarity) AS high FROM semantic y) sr
        ORDER BY 2 DESC, 1
        LIMIT k
    )
    SELECT f.chunk_id, h.document_id, h.external_id, h.ordinal, h.title, h.text, h.metadata, h.chunk_metadata,
           h.char_start, h.char_end, f.score, f.text_rank, f.text_score, f.vector_rank, f.similarity, f.distance
    FROM fused f
    CROSS JOIN LATERAL memora.search_hit_row(c.id, f.chunk_id) h
    ORDER BY f.score DESC, f.chunk_id;
END
$$;

COMMENT ON FUNCTION memora.search_hybrid_v2(text, text, vector, integer, jsonb, text, integer, double precision,
                                            double precision, integer, integer, boolean, integer) IS
    'Hybrid search: BM25 and nearest-neighbour candidates (CANDIDATES each, default 4 * k; the vectors of embedding '
    'version VERSION, NULL for the active one), fused by FUSION: '
    'convex (default): (text_weight * min-max normalised BM25 + vector_weight * min-max normalised similarity) '
    '/ (text_weight + vector_weight); rrf: text_weight / (rrf_k + text rank) + vector_weight / (rrf_k + vector rank).';

CREATE OR REPLACE FUNCTION memora.search_hybrid_v1(
    collection text,
    query text,
    query_embedding vector,
    k integer,
    filter jsonb DEFAULT NULL,
    fusion text DEFAULT 'convex',
    rrf_k integer DEFAULT 60,
    text_weight double precision DEFAULT 1,
    vector_weight double precision DEFAULT 1,
    candidates integer DEFAULT NULL,
    ef_search integer DEFAULT NULL,
    exact boolean DEFAULT false
)
RETURNS SETOF memora.search_hit
LANGUAGE sql STABLE
AS $$
    SELECT * FROM memora.search_hybrid_v2(collection, query, query_embedding, k, filter, fusion, rrf_k, text_weight,
                                          vector_weight, candidates, ef_search, exact, NULL)
$$;

COMMENT ON FUNCTION memora.search_hybrid_v1(text, text, vector, integer, jsonb, text, integer, double precision,
                                            double precision, integer, integer, boolean) IS
    'search_hybrid_v2 over the active embedding version.';

