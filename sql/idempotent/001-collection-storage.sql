-- requires: 0001 (memora.collection, memora.embedding)
--
-- Vector storage: what every layout of memora.embedding uses.
--
-- memora.embedding is partitioned by collection_id. Each table that holds vectors of one kind (a collection's
-- partition up to migration 0009, one of its versions from then on: 001-partitions-by-collection.sql,
-- 014-embedding-versions.sql) gets a CHECK that only vectors of its model and dimensions enter it, an HNSW index
-- whose operator class matches its metric and storage type, and, for what search reads, a function that walks that
-- index with static SQL. The functions here make them; triggers on memora.collection (and memora.embedding_version)
-- keep them in step, so a collection inserted from psql gets exactly what one created through the REST API gets.
--
-- An empty table and its index are created in milliseconds, and dropping a collection drops its tables instead of
-- deleting its vectors row by row.

CREATE OR REPLACE FUNCTION memora.embedding_partition(collection_id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 'embedding_c' || collection_id $$;

COMMENT ON FUNCTION memora.embedding_partition(bigint) IS
    'Name of the memora.embedding partition that holds one collection''s vectors.';


CREATE OR REPLACE FUNCTION memora.version_table(collection_id bigint, version integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT memora.embedding_partition(collection_id) || '_v' || version $$;

COMMENT ON FUNCTION memora.version_table(bigint, integer) IS
    'Name of the table that holds one version of a collection''s vectors (a partition of its partition, from migration 0009).';


CREATE OR REPLACE FUNCTION memora.hnsw_opclass(metric text, storage text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT storage || CASE metric
        WHEN 'cosine' THEN '_cosine_ops'
        WHEN 'l2' THEN '_l2_ops'
        WHEN 'inner_product' THEN '_ip_ops'
    END
$$;

COMMENT ON FUNCTION memora.hnsw_opclass(text, text) IS
    'pgvector operator class for a metric (cosine | l2 | inner_product) and storage type (vector | halfvec).';


CREATE OR REPLACE FUNCTION memora.vector_schema()
RETURNS name
LANGUAGE sql STABLE
AS $$
    SELECT n.nspname FROM pg_catalog.pg_extension e
    JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'vector'
$$;

COMMENT ON FUNCTION memora.vector_schema() IS 'Schema the vector extension is installed in.';


CREATE OR REPLACE FUNCTION memora.distance_operator(metric text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE metric WHEN 'cosine' THEN '<=>' WHEN 'l2' THEN '<->' WHEN 'inner_product' THEN '<#>' END $$;

COMMENT ON FUNCTION memora.distance_operator(text) IS
    'The pgvector distance operator of a metric: <=> (cosine), <-> (l2), <#> (inner_product, negated).';


CREATE OR REPLACE FUNCTION memora.hnsw_index_sql(
    index_name text, table_name text, storage text, dimensions integer, metric text, m integer,
    ef_construction integer, predicate text DEFAULT NULL
)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The column is an untyped vector (shared by every collection, or by every dataset's examples); the index
    -- casts it to one type and size, so only vectors of that size may reach it (the partition's CHECK, or a
    -- partial index's predicate).
    SELECT format(
        'CREATE INDEX %I ON memora.%I USING hnsw ((embedding::%I.%s(%s)) %I.%I) WITH (m = %s, ef_construction = %s)',
        index_name, table_name, memora.vector_schema(), storage, dimensions,
        memora.vector_schema(), memora.hnsw_opclass(metric, storage), m, ef_construction
    ) || coalesce(' WHERE ' || predicate, '')
$$;

COMMENT ON FUNCTION memora.hnsw_index_sql(text, text, text, integer, text, integer, integer, text) IS
    'The CREATE INDEX statement of an HNSW index over TABLE_NAME.embedding cast to STORAGE(DIMENSIONS); every '
    'HNSW index Memora makes (collections, datasets) is written by this function.';


CREATE OR REPLACE FUNCTION memora.nearest_function(collection_id bigint, version integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN version IS NULL THEN memora.embedding_partition(collection_id)
                ELSE memora.version_table(collection_id, version) END || '_nearest'
$$;

COMMENT ON FUNCTION memora.nearest_function(bigint, integer) IS
    'Name of the function that returns a collection''s nearest chunks to a vector over the HNSW index of one '
    'version of its vectors (VERSION NULL before migration 0009: of its partition).';



CREATE OR REPLACE FUNCTION memora.set_vector_check(p_table text, p_model text, p_dimensions integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format(
        'ALTER TABLE memora.%I DROP CONSTRAINT IF EXISTS %I, DROP CONSTRAINT IF EXISTS %I',
        p_table, p_table || '_model', p_table || '_dimensions'
    );
    -- Named after what they check, so the error says which rule a vector broke. Adding them checks the vectors
    -- stored: fails, and so rolls back what changed them, if any no longer fit.
    EXECUTE format(
        'ALTER TABLE memora.%I ADD CONSTRAINT %I CHECK (model = %L), '
        'ADD CONSTRAINT %I CHECK (%I.vector_dims(embedding) = %s)',
        p_table, p_table || '_model', p_model, p_table || '_dimensions', memora.vector_schema(), p_dimensions
    );
END
$$;

COMMENT ON FUNCTION memora.set_vector_check(text, text, integer) IS
    'Allow only vectors of model P_MODEL and P_DIMENSIONS dimensions into the vector table P_TABLE.';


CREATE OR REPLACE FUNCTION memora.make_vector_index(
    p_table text, p_storage text, p_dimensions integer, p_metric text, p_m integer, p_ef_construction integer
)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('DROP INDEX IF EXISTS memora.%I', p_table || '_hnsw');
    EXECUTE memora.hnsw_index_sql(p_table || '_hnsw', p_table, p_storage, p_dimensions, p_metric, p_m,
                                  p_ef_construction);
END
$$;

COMMENT ON FUNCTION memora.make_vector_index(text, text, integer, text, integer, integer) IS
    '(Re)build the HNSW index <P_TABLE>_hnsw of a vector table.';


CREATE OR REPLACE FUNCTION memora.adopt_embedding_owner(p_table text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    parent record;
    grant_ record;
BEGIN
    -- Whoever creates it (the service's role, a superuser in psql), a table of vectors is memora.embedding's: same
    -- owner, same grants (the SQL roles of migration 0007), since the search functions read those tables by name.
    SELECT c.relowner::regrole AS owner, c.relacl INTO parent FROM pg_class c WHERE c.oid = 'memora.embedding'::regclass;
    EXECUTE format('ALTER TABLE memora.%I OWNER TO %s', p_table, parent.owner);
    FOR grant_ IN
        SELECT a.grantee::regrole AS grantee, a.privilege_type
        FROM aclexplode(parent.relacl) a
        WHERE a.grantee <> 0 AND a.grantee <> parent.owner::oid
    LOOP
        EXECUTE format('GRANT %s ON memora.%I TO %s', grant_.privilege_type, p_table, grant_.grantee);
    END LOOP;
END
$$;

COMMENT ON FUNCTION memora.adopt_embedding_owner(text) IS
    'Give the vector table P_TABLE memora.embedding''s owner and grants.';


-- A collection's nearest-neighbour query is written for the table of its vectors, their storage type, size and
-- metric (the index is on a cast, and the query must order by that same cast), so a function made for each
-- collection runs it as static SQL: PL/pgSQL keeps its plan for the session. Built as a statement on every call
-- (EXECUTE), it was planned every time, and on a few thousand vectors the planner chose to read them all and sort
-- rather than walk the index, which cost more (benchmarks/search_fixed_cost.py, docs/benchmarks.md section 11).
-- memora.vector_candidates calls it for up to 100 rows without a filter; exact search stays its `exact`. It walks the
-- vectors of one version (from migration 0009; of the collection's partition before it): the layout's file makes it
-- with the version's index, drops it with the version, and makes it again for every version at its end, since a
-- migration run drops every function of Memora's first.
CREATE OR REPLACE FUNCTION memora.make_nearest_function(
    p_collection_id bigint, p_version integer, p_table text, p_storage text, p_dimensions integer, p_metric text,
    p_adapted boolean DEFAULT false
)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ext name := memora.vector_schema();
    fn text := memora.nearest_function(p_collection_id, p_version);
    distance text := format('(e.embedding::%1$I.%2$s(%3$s)) OPERATOR(%1$I.%4$s) query::%1$I.%2$s(%3$s)',
                            ext, p_storage, p_dimensions, memora.distance_operator(p_metric));
BEGIN
    EXECUTE format(
        $sql$
        CREATE OR REPLACE FUNCTION memora.%1$I(query %2$I.vector, k integer)
        RETURNS TABLE (chunk_id bigint, distance double precision, rank integer)
        LANGUAGE plpgsql STABLE
        SET search_path = pg_catalog, pg_temp
        SET enable_seqscan = off
        SET plan_cache_mode = force_generic_plan
        AS $body$
        BEGIN
            %5$s
            RETURN QUERY
            WITH nearest AS MATERIALIZED (
                SELECT e.chunk_id, %3$s AS distance
                FROM memora.%4$I e
                ORDER BY %3$s
                LIMIT k
            )
            SELECT n.chunk_id, n.distance, (row_number() OVER (ORDER BY n.distance, n.chunk_id))::integer
            FROM nearest n
            ORDER BY n.distance, n.chunk_id;
        END
        $body$
        $sql$,
        fn, ext, distance, p_table,
        -- A version with an adapter maps the query before it searches (014-embedding-versions.sql).
        CASE WHEN p_adapted THEN format(
            'query := memora.adapt_query(%1$s, %2$s, query); IF query IS NULL THEN PERFORM memora.argument_error('
            '''version'', ''embedding version %2$s of collection %1$s has no adapter yet: it is still training''); '
            'END IF;', p_collection_id, p_version) ELSE '' END
    );
    EXECUTE format(
        'COMMENT ON FUNCTION memora.%I(%I.vector, integer) IS %L', fn, ext,
        format('The K nearest chunks of collection %s to QUERY over the HNSW index of memora.%s (hnsw.ef_search '
               'as SET), ranked; made by memora.create_nearest_function.', p_collection_id, p_table)
    );
    -- Owned as the tables of vectors are, whoever made the collection.
    EXECUTE format('ALTER FUNCTION memora.%I(%I.vector, integer) OWNER TO %s', fn, ext,
                   (SELECT relowner::regrole FROM pg_class WHERE oid = 'memora.embedding'::regclass));
END
$$;

COMMENT ON FUNCTION memora.make_nearest_function(bigint, integer, text, text, integer, text, boolean) IS
    '(Re)make the function (memora.nearest_function) that walks the HNSW index of P_TABLE for one collection; '
    'P_ADAPTED: through the version''s adapter (memora.adapt_query).';
