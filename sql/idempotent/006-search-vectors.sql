-- requires: 0002 (memora.collection, memora.embedding and its per-collection partitions)
--
-- Nearest neighbours over a collection's HNSW index (sql/idempotent/001-collection-storage.sql builds it), and the
-- similarity a pgvector distance stands for.

CREATE OR REPLACE FUNCTION memora.hnsw_ef_search(requested integer, k integer)
RETURNS integer
LANGUAGE sql STABLE
AS $$
    -- REQUESTED, else the session's hnsw.ef_search if it was SET to other than pgvector's default of 40, else 64,
    -- which finds more of the true neighbours than 40 (0.96 of the top 10 against 0.93 on the passage queries of
    -- docs/benchmarks.md) for ~0.3 ms more. An HNSW scan returns at most ef_search rows, so it is at least K;
    -- pgvector allows at most 1,000 (past that, vector_candidates' iterative scan supplies the rest).
    SELECT least(greatest(
        coalesce(requested, nullif(nullif(current_setting('hnsw.ef_search', true), ''), '40')::integer, 64),
        k), 1000)
$$;

COMMENT ON FUNCTION memora.hnsw_ef_search(integer, integer) IS
    'The hnsw.ef_search of a vector search for K rows: REQUESTED, else the session''s if SET (not 40), else 64.';


CREATE OR REPLACE FUNCTION memora.vector_candidates(
    p_collection_id bigint,
    p_embedding vector,
    p_limit integer,
    p_filter jsonb DEFAULT NULL,
    p_ef_search integer DEFAULT NULL,
    p_exact boolean DEFAULT false,
    p_version integer DEFAULT NULL
)
RETURNS TABLE (chunk_id bigint, distance double precision, rank integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c memora.collection;
    v record;
    ext name;
    f record;
    key text;
    query text;
    old_ef_search text := current_setting('hnsw.ef_search', true);
    old_iterative_scan text := current_setting('hnsw.iterative_scan', true);
    ignored text;
BEGIN
    IF p_limit <= 0 THEN
        RETURN;
    END IF;
    -- Settings are changed by assignment rather than PERFORM, which would run a statement for each.
    IF NOT p_exact THEN
        ignored := set_config('hnsw.ef_search', memora.hnsw_ef_search(p_ef_search, p_limit)::text, true);
    END IF;
    IF NOT p_exact AND p_filter IS NULL AND p_limit <= 100 THEN
        -- The common case: the version's own function (001-collection-storage.sql), whose plan is kept. A
        -- collection or version that does not exist has no such function: "function ... does not exist". Deeper
        -- requests (an evaluation's hundreds of rows) are planned per call below, where planning costs little beside
        -- the scan and the planner reads a small collection's vectors exactly rather than walk the index that far.
        RETURN QUERY EXECUTE format(
            'SELECT * FROM memora.%I($1, $2)',
            memora.nearest_function(p_collection_id, coalesce(p_version, memora.active_version_of(p_collection_id)))
        )
        USING p_embedding, p_limit;
    ELSE
        SELECT * INTO STRICT c FROM memora.collection WHERE id = p_collection_id;
        v := memora.version_of(c, p_version);
        IF v.adapted THEN  -- as the version's nearest function does
            p_embedding := memora.adapt_query(c.id, coalesce(p_version, memora.active_version_of(c.id)), p_embedding);
            IF p_embedding IS NULL THEN
                PERFORM memora.argument_error('version', format(
                    'embedding version %s of collection %L has no adapter yet: it is still training',
                    coalesce(p_version, memora.active_version_of(c.id)), c.name));
            END IF;
        END IF;
        ext := memora.vector_schema();
        f := memora.compile_filter(p_filter, 3, 4);
        IF p_exact THEN
            -- Not the indexed expression, so the planner scans every vector of the partition.
            key := 'e.embedding';
            query := '$1';
        ELSE
            key := format('(e.embedding::%I.%s(%s))', ext, v.storage, v.dimensions);
            query := format('$1::%I.%s(%s)', ext, v.storage, v.dimensions);
            -- With a filter (or P_LIMIT over 1,000) the index scan goes on past ef_search candidates until LIMIT
            -- rows pass it (pgvector >= 0.8); relaxed order, so the rows are sorted again below.
            IF p_filter IS NOT NULL OR p_limit > 1000 THEN
                ignored := set_config('hnsw.iterative_scan', 'relaxed_order', true);
            END IF;
        END IF;
        RETURN QUERY EXECUTE format(
            $sql$
            WITH nearest AS MATERIALIZED (
                SELECT e.chunk_id, %1$s OPERATOR(%2$I.%3$s) %4$s AS distance
                FROM memora.%5$I e %6$s
                WHERE %7$s
                ORDER BY %1$s OPERATOR(%2$I.%3$s) %4$s
                LIMIT $2
            )
            SELECT n.chunk_id, n.distance, (row_number() OVER (ORDER BY n.distance, n.chunk_id))::integer
            FROM nearest n
            ORDER BY n.distance, n.chunk_id
            $sql$,
            key, ext, memora.distance_operator(v.metric), query, v.tbl,
            CASE WHEN p_filter IS NULL THEN ''
                 ELSE 'JOIN memora.chunk c ON c.collection_id = e.collection_id AND c.id = e.chunk_id '
                      'JOIN memora.document d ON d.collection_id = c.collection_id AND d.id = c.document_id' END,
            f.predicate
        )
        USING p_embedding, p_limit, f.keys, f.vals;
        IF old_iterative_scan IS NOT NULL THEN
            ignored := set_config('hnsw.iterative_scan', old_iterative_scan, true);
        END IF;
    END IF;
    IF old_ef_search IS NOT NULL THEN
        ignored := set_config('hnsw.ef_search', old_ef_search, true);
    END IF;
END
$$;

COMMENT ON FUNCTION memora.vector_candidates(bigint, vector, integer, jsonb, integer, boolean, integer) IS
    'The P_LIMIT nearest chunks of a collection to a vector (HNSW, or every vector if P_EXACT), with a filter, in '
    'embedding version P_VERSION (NULL: the active one).';


CREATE OR REPLACE FUNCTION memora.vector_similarity(metric text, distance double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE metric WHEN 'cosine' THEN 1 - distance ELSE -distance END
$$;

COMMENT ON FUNCTION memora.vector_similarity(text, double precision) IS
    'Similarity from a pgvector distance: 1 - cosine distance; inner product (<#> is its negative); -L2 distance.';

