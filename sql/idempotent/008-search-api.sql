-- requires: 0002 (memora.search_hit, from sql/incremental/0002-search-hit.sql)
--
-- The search API: BM25 (005-search-bm25.sql), HNSW (006-search-vectors.sql) and a fusion of the two
-- (007-search-fusion.sql) behind functions that take a collection's name and check their arguments.
--
-- The public functions take a collection name and return memora.search_hit rows:
--
--   memora.search_text(collection, query, k, filter)                              BM25, OR over the query's terms
--   memora.search_vector(collection, query_embedding, k, filter, ef_search, exact)
--   memora.search_hybrid(collection, query, query_embedding, k, filter, fusion, rrf_k, text_weight, vector_weight,
--                        candidates, ef_search)
--
-- Each is a thin wrapper over a _v1 function whose signature never changes; a new signature gets a _v2.
-- search_vector_v2 and search_hybrid_v2 take the embedding version to search (migration 0009), which the REST API
-- passes; the _v1 functions are them with the active version, and the wrappers stay on _v1, since a wrapper with
-- one more argument would be a second function of the same name, ambiguous where the first is kept. The wrappers
-- (and those _v1) have no SET clause, so that the planner inlines them into the caller's statement (they name every
-- object by its schema). Filters: 004-filter.sql.
-- Errors: unknown collection -> SQLSTATE P0002 (no_data_found); bad arguments -> 22023 (invalid_parameter_value)
-- with the argument's name as DETAIL.


CREATE OR REPLACE FUNCTION memora.argument_error(argument text, reason text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = argument || ': ' || reason,
        DETAIL = argument;
END
$$;


CREATE OR REPLACE FUNCTION memora.search_collection(collection text)
RETURNS memora.collection
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c memora.collection;
BEGIN
    SELECT * INTO c FROM memora.collection WHERE name = search_collection.collection;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = format('collection %L does not exist', collection),
            DETAIL = 'collection';
    END IF;
    RETURN c;
END
$$;

CREATE OR REPLACE FUNCTION memora.check_search_arguments(
    c memora.collection,
    k integer,
    ef_search integer,
    query_embedding vector
)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF k IS NULL OR k < 1 OR k > 1000 THEN
        PERFORM memora.argument_error('k', 'must be between 1 and 1000');
    ELSIF ef_search IS NOT NULL AND (ef_search < 1 OR ef_search > 1000) THEN
        PERFORM memora.argument_error('ef_search', 'must be between 1 and 1000');
    ELSIF query_embedding IS NOT NULL AND cardinality(query_embedding::real[]) <> c.dimensions THEN
        PERFORM memora.argument_error('query_embedding', format('has %s dimensions; collection %L has %s',
            cardinality(query_embedding::real[]), c.name, c.dimensions));
    END IF;
END
$$;

COMMENT ON FUNCTION memora.check_search_arguments(memora.collection, integer, integer, vector) IS
    'Refuse (22023, the argument''s name as DETAIL) a K, EF_SEARCH or QUERY_EMBEDDING that C cannot be searched with.';

CREATE OR REPLACE FUNCTION memora.search_version(
    c memora.collection, version integer, query_embedding vector,
    OUT tbl text, OUT storage text, OUT dimensions integer, OUT metric text
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF version IS NULL OR version = memora.active_version(c) THEN
        -- The usual case, with no lookup: the collection's columns are the active version's.
        storage := c.storage; dimensions := c.dimensions; metric := c.metric;
    ELSE
        -- 22023 (DETAIL version) for a version the collection does not have.
        SELECT o.tbl, o.storage, o.dimensions, o.metric INTO tbl, storage, dimensions, metric
        FROM memora.version_of(c, version) o;
    END IF;
    IF query_embedding IS NOT NULL AND cardinality(query_embedding::real[]) <> dimensions THEN
        PERFORM memora.argument_error('query_embedding', format(
            'has %s dimensions; %scollection %L has %s', cardinality(query_embedding::real[]),
            CASE WHEN version IS NULL OR version = memora.active_version(c) THEN ''
                 ELSE format('version %s of ', version) END, c.name, dimensions));
    END IF;
END
$$;

COMMENT ON FUNCTION memora.search_version(memora.collection, integer, vector) IS
    'The storage, dimensions and metric of the vectors a search of C reads (VERSION, NULL for the active one; TBL '
    'only for another version, from memora.version_of), having checked that QUERY_EMBEDDING fits them.';


CREATE OR REPLACE FUNCTION memora.search_text_v1(
    collection text,
    query text,
    k integer,
    filter jsonb DEFAULT NULL
)
RETURNS SETOF memora.search_hit
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    c memora.collection := memora.search_collection(collection);
BEGIN
    PERFORM memora.check_search_arguments(c, k, NULL, NULL);
    IF coalesce(btrim(query), '') = '' THEN
        PERFORM memora.argument_error('query', 'give a query text');
    END IF;
    -- What search_hybrid_v1 returns with vector_weight 0, without its fusion.
    RETURN QUERY
    SELECT b.chunk_id, h.document_id, h.external_id, h.ordinal, h.title, h.text, h.metadata, h.chunk_metadata,
           h.char_start, h.char_end, b.score, b.rank, b.score, NULL::integer, NULL::double precision,
           NULL::double precision
    FROM memora.bm25_candidates(c.id, query, k, filter) b
    CROSS JOIN LATERAL memora.search_hit_row(c.id, b.chunk_id) h
    ORDER BY b.rank;
END
$$;

COMMENT ON FUNCTION memora.search_text_v1(text, text, integer, jsonb) IS
    'BM25 search: the K chunks that score best for any of the query''s terms; score is the BM25 score.';


CREATE OR REPLACE FUNCTION memora.search_vector_v2(
    collection text,
    query_embedding vector,
    k integer,
    filter jsonb DEFAULT NULL,
    ef_search integer DEFAULT NULL,
    exact boolean DEFAULT false,
    version integer DEFAULT NULL
)
RETURNS SETOF memora.search_hit
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    c memora.collection := memora.search_collection(collection);
    v record;
BEGIN
    PERFORM memora.check_search_arguments(c, k, ef_search, NULL);
    IF query_embedding IS NULL THEN
        PERFORM memora.argument_error('query_embedding', 'is required');
    END IF;
    SELECT * INTO v FROM memora.search_version(c, version, query_embedding);
    -- What search_hybrid_v2 returns with text_weight 0, without its fusion: 0.17 ms less a search (of ~2).
    RETURN QUERY
    SELECT n.chunk_id, h.document_id, h.external_id, h.ordinal, h.title, h.text, h.metadata, h.chunk_metadata,
           h.char_start, h.char_end, memora.vector_similarity(v.metric, n.distance), NULL::integer,
           NULL::double precision, n.rank, memora.vector_similarity(v.metric, n.distance), n.distance
    FROM (SELECT * FROM memora.vector_candidates(c.id, query_embedding, k, filter, ef_search, exact,
                                                 coalesce(version, memora.active_version(c))) LIMIT k) n
    CROSS JOIN LATERAL memora.search_hit_row(c.id, n.chunk_id) h
    ORDER BY n.rank;
END
$$;

COMMENT ON FUNCTION memora.search_vector_v2(text, vector, integer, jsonb, integer, boolean, integer) IS
    'Nearest-neighbour search over the HNSW index of embedding version VERSION (NULL: the active one; EF_SEARCH per '
    'query; EXACT scans every vector); a filter keeps the index scan going until K rows pass it.';

CREATE OR REPLACE FUNCTION memora.search_vector_v1(
    collection text,
    query_embedding vector,
    k integer,
    filter jsonb DEFAULT NULL,
    ef_search integer DEFAULT NULL,
    exact boolean DEFAULT false
)
RETURNS SETOF memora.search_hit
LANGUAGE sql STABLE
AS $$ SELECT * FROM memora.search_vector_v2(collection, query_embedding, k, filter, ef_search, exact, NULL) $$;

COMMENT ON FUNCTION memora.search_vector_v1(text, vector, integer, jsonb, integer, boolean) IS
    'search_vector_v2 over the active embedding version.';


-- The names people type: the current version of each function.

CREATE OR REPLACE FUNCTION memora.search_text(collection text, query text, k integer, filter jsonb DEFAULT NULL)
RETURNS SETOF memora.search_hit
LANGUAGE sql STABLE
AS $$ SELECT * FROM memora.search_text_v1(collection, query, k, filter) $$;

CREATE OR REPLACE FUNCTION memora.search_vector(
    collection text,
    query_embedding vector,
    k integer,
    filter jsonb DEFAULT NULL,
    ef_search integer DEFAULT NULL,
    exact boolean DEFAULT false
)
RETURNS SETOF memora.search_hit
LANGUAGE sql STABLE
AS $$ SELECT * FROM memora.search_vector_v1(collection, query_embedding, k, filter, ef_search, exact) $$;

CREATE OR REPLACE FUNCTION memora.search_hybrid(
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
    ef_search integer DEFAULT NULL
)
RETURNS SETOF memora.search_hit
LANGUAGE sql STABLE
AS $$
    SELECT * FROM memora.search_hybrid_v1(collection, query, query_embedding, k, filter, fusion, rrf_k, text_weight,
                                          vector_weight, candidates, ef_search)
$$;

COMMENT ON FUNCTION memora.search_text(text, text, integer, jsonb) IS 'Current version of search_text (_v1).';
COMMENT ON FUNCTION memora.search_vector(text, vector, integer, jsonb, integer, boolean) IS
    'Current version of search_vector (_v1).';
COMMENT ON FUNCTION memora.search_hybrid(text, text, vector, integer, jsonb, text, integer, double precision,
                                         double precision, integer, integer) IS
    'Current version of search_hybrid (_v1).';
