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

CREATE OR REPLACE FUNCTION memora.hybrid_function(collection_id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 'search_hybrid_c' || collection_id $$;

COMMENT ON FUNCTION memora.hybrid_function(bigint) IS
    'Name of the function that runs search_hybrid_v1''s statement for one collection (memora.create_hybrid_function).';


-- search_hybrid_v1's statement is made for each collection, as the nearest function is (001-collection-storage.sql):
-- with the collection's id and metric written in, and without a filter, exact search or more than 100 candidates, its
-- vector side a static call of the collection's nearest function. PL/pgSQL keeps the statement's plan, and a
-- search goes from search_hybrid_v1 through one EXECUTE to static SQL for both sides and the fusion, where it went
-- through vector_candidates' EXECUTE and one more layer of result sets: 0.95 of the time on SQuAD's 836 chunks
-- (benchmarks/search_fixed_cost.py, docs/benchmarks.md section 11). Made with the collection's index (its metric,
-- storage or size may change), dropped with its partition, and made again for every collection at the end of this
-- file, since a migration run drops every function of Memora's first.
CREATE OR REPLACE FUNCTION memora.create_hybrid_function(p_collection_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c memora.collection;
    fn text := memora.hybrid_function(p_collection_id);
    -- The statement; %1$s is the collection's id, %2$L its metric, %3$s where its vector candidates come from.
    statement text := $sql$
        WITH lexical AS MATERIALIZED (
            SELECT b.chunk_id, b.rank, b.score
            FROM memora.bm25_candidates(%1$s, query, depth, filter) b
            WHERE use_text
        ),
        semantic AS MATERIALIZED (
            SELECT n.chunk_id, n.rank, n.distance, memora.vector_similarity(%2$L, n.distance) AS similarity
            FROM %3$s n
            WHERE use_vector
        ),
        fused AS (
            SELECT coalesce(l.chunk_id, s.chunk_id) AS chunk_id,
                   CASE fusion
                       WHEN 'rrf' THEN
                           coalesce(text_weight / (rrf_k + l.rank), 0) + coalesce(vector_weight / (rrf_k + s.rank), 0)
                       -- Each list's scores min-max normalised to [0, 1] (all 1 if they are equal); a chunk absent
                       -- from a list gets 0 there, the least of what made the list.
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
        CROSS JOIN LATERAL memora.search_hit_row(%1$s, f.chunk_id) h
        ORDER BY f.score DESC, f.chunk_id
    $sql$;
BEGIN
    SELECT * INTO STRICT c FROM memora.collection WHERE id = p_collection_id;
    EXECUTE format(
        $sql$
        CREATE OR REPLACE FUNCTION memora.%1$I(
            query text, query_embedding %2$I.vector, k integer, filter jsonb, fusion text, rrf_k integer,
            text_weight double precision, vector_weight double precision, depth integer, ef_search integer,
            exact boolean
        )
        RETURNS SETOF memora.search_hit
        LANGUAGE plpgsql STABLE
        SET search_path = pg_catalog, pg_temp
        -- One plan of each statement per session: PostgreSQL would plan them again on every call (a custom plan
        -- looks cheaper, as it drops the candidate list not used).
        SET plan_cache_mode = force_generic_plan
        AS $body$
        DECLARE
            use_text boolean := coalesce(btrim(query), '') <> '' AND text_weight > 0;
            use_vector boolean := query_embedding IS NOT NULL AND vector_weight > 0;
            old_ef_search text;
            ignored text;
        BEGIN
            IF use_vector AND memora.nearest_function_serves(depth, filter, exact) THEN
                old_ef_search := current_setting('hnsw.ef_search', true);
                ignored := set_config('hnsw.ef_search', memora.hnsw_ef_search(ef_search, depth)::text, true);
                RETURN QUERY %3$s;
                IF old_ef_search IS NOT NULL THEN
                    ignored := set_config('hnsw.ef_search', old_ef_search, true);
                END IF;
            ELSE
                RETURN QUERY %4$s;
            END IF;
        END
        $body$
        $sql$,
        fn, memora.vector_schema(),
        format(statement, c.id, c.metric, format('memora.%I(query_embedding, depth)', memora.nearest_function(c.id))),
        format(statement, c.id, c.metric,
               format('memora.vector_candidates(%s, query_embedding, depth, filter, ef_search, exact)', c.id))
    );
    EXECUTE format(
        'COMMENT ON FUNCTION memora.%I(text, %I.vector, integer, jsonb, text, integer, double precision, '
        'double precision, integer, integer, boolean) IS %L', fn, memora.vector_schema(),
        format('search_hybrid_v1 for collection %s (%s), its arguments checked; made by '
               'memora.create_hybrid_function.', c.id, c.name)
    );
    -- Owned as the partition is, whoever made the collection.
    EXECUTE format(
        'ALTER FUNCTION memora.%I(text, %I.vector, integer, jsonb, text, integer, double precision, '
        'double precision, integer, integer, boolean) OWNER TO %s', fn, memora.vector_schema(),
        (SELECT relowner::regrole FROM pg_class WHERE oid = 'memora.embedding'::regclass)
    );
END
$$;

COMMENT ON FUNCTION memora.create_hybrid_function(bigint) IS
    '(Re)make the function (memora.hybrid_function) that runs search_hybrid_v1''s statement for one collection.';


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
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c memora.collection := memora.search_collection(collection);
    depth integer := coalesce(candidates, 4 * k);
    use_text boolean := coalesce(btrim(query), '') <> '' AND text_weight > 0;
    use_vector boolean := query_embedding IS NOT NULL AND vector_weight > 0;
BEGIN
    PERFORM memora.check_search_arguments(c, k, ef_search, query_embedding);
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
    -- The statement itself is the collection's (memora.create_hybrid_function).
    RETURN QUERY EXECUTE format('SELECT * FROM memora.%I($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)',
                                memora.hybrid_function(c.id))
    USING query, query_embedding, k, filter, fusion, rrf_k, text_weight, vector_weight, depth, ef_search, exact;
END
$$;

COMMENT ON FUNCTION memora.search_hybrid_v1(text, text, vector, integer, jsonb, text, integer, double precision,
                                            double precision, integer, integer, boolean) IS
    'Hybrid search: BM25 and nearest-neighbour candidates (CANDIDATES each, default 4 * k), fused by FUSION: '
    'convex (default): (text_weight * min-max normalised BM25 + vector_weight * min-max normalised similarity) '
    '/ (text_weight + vector_weight); rrf: text_weight / (rrf_k + text rank) + vector_weight / (rrf_k + vector rank).';


-- The hybrid functions of the collections there are (a migration run dropped them with the others).
SELECT memora.create_hybrid_function(id) FROM memora.collection;
