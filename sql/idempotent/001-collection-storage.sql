-- requires: 0001 (memora.collection, memora.embedding)
--
-- Per-collection vector storage.
--
-- memora.embedding is partitioned by collection_id. Each collection gets its own partition, a CHECK that only
-- vectors of the collection's model and dimensions enter it, and an HNSW index whose operator class matches the
-- collection's metric and storage type. The triggers below keep them in step with memora.collection, so a
-- collection inserted from psql gets exactly what one created through the REST API gets.
--
-- An empty partition and its index are created in milliseconds, and dropping a collection drops its partition
-- instead of deleting its vectors row by row.

CREATE OR REPLACE FUNCTION memora.embedding_partition(collection_id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 'embedding_c' || collection_id $$;

COMMENT ON FUNCTION memora.embedding_partition(bigint) IS
    'Name of the memora.embedding partition that holds one collection''s vectors.';


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


CREATE OR REPLACE FUNCTION memora.create_collection_index(p_collection_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c memora.collection;
    part text := memora.embedding_partition(p_collection_id);
BEGIN
    SELECT * INTO STRICT c FROM memora.collection WHERE id = p_collection_id;
    EXECUTE format('DROP INDEX IF EXISTS memora.%I', part || '_hnsw');
    EXECUTE memora.hnsw_index_sql(
        part || '_hnsw', part, c.storage, c.dimensions, c.metric, c.hnsw_m, c.hnsw_ef_construction
    );
    PERFORM memora.create_nearest_function(p_collection_id);
END
$$;

COMMENT ON FUNCTION memora.create_collection_index(bigint) IS
    '(Re)build the HNSW index of a collection from its metric, storage type, dimensions, m and ef_construction, '
    'and the function that walks it (memora.nearest_function).';


CREATE OR REPLACE FUNCTION memora.nearest_function(collection_id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT memora.embedding_partition(collection_id) || '_nearest' $$;

COMMENT ON FUNCTION memora.nearest_function(bigint) IS
    'Name of the function that returns a collection''s nearest chunks to a vector over its HNSW index.';


-- A collection's nearest-neighbour query is written for its partition, storage type, size and metric (the index is
-- on a cast, and the query must order by that same cast), so a function made for each collection runs it as static
-- SQL: PL/pgSQL keeps its plan for the session. Built as a statement on every call (EXECUTE), it was planned every
-- time, and on a few thousand vectors the planner chose to read them all and sort rather than walk the index, which
-- cost more (benchmarks/search_fixed_cost.py, docs/benchmarks.md section 11). memora.vector_candidates calls it for
-- up to 100 rows without a filter; exact search stays its `exact`. Made with the index
-- (memora.create_collection_index), dropped with the partition, and made again for every collection at the end of
-- this file, since a migration run drops every function of Memora's first.
CREATE OR REPLACE FUNCTION memora.create_nearest_function(p_collection_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c memora.collection;
    ext name := memora.vector_schema();
    fn text := memora.nearest_function(p_collection_id);
    distance text;
BEGIN
    SELECT * INTO STRICT c FROM memora.collection WHERE id = p_collection_id;
    distance := format('(e.embedding::%1$I.%2$s(%3$s)) OPERATOR(%1$I.%4$s) query::%1$I.%2$s(%3$s)',
                       ext, c.storage, c.dimensions, memora.distance_operator(c.metric));
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
        fn, ext, distance, memora.embedding_partition(p_collection_id)
    );
    EXECUTE format(
        'COMMENT ON FUNCTION memora.%I(%I.vector, integer) IS %L', fn, ext,
        format('The K nearest chunks of collection %s (%s) to QUERY over its HNSW index (hnsw.ef_search as SET), '
               'ranked; made by memora.create_nearest_function.', c.id, c.name)
    );
    -- Owned as the partition is, whoever made the collection.
    EXECUTE format('ALTER FUNCTION memora.%I(%I.vector, integer) OWNER TO %s', fn, ext,
                   (SELECT relowner::regrole FROM pg_class WHERE oid = 'memora.embedding'::regclass));
END
$$;

COMMENT ON FUNCTION memora.create_nearest_function(bigint) IS
    '(Re)make the function (memora.nearest_function) that walks a collection''s HNSW index with static SQL.';


CREATE OR REPLACE FUNCTION memora.set_collection_vector_check(p_collection_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c memora.collection;
    ext name := memora.vector_schema();
    part text := memora.embedding_partition(p_collection_id);
BEGIN
    SELECT * INTO STRICT c FROM memora.collection WHERE id = p_collection_id;
    EXECUTE format(
        'ALTER TABLE memora.%I DROP CONSTRAINT IF EXISTS %I, DROP CONSTRAINT IF EXISTS %I',
        part, part || '_model', part || '_dimensions'
    );
    -- Named after what they check, so the error says which rule a vector broke.
    EXECUTE format(
        'ALTER TABLE memora.%I ADD CONSTRAINT %I CHECK (model = %L), '
        'ADD CONSTRAINT %I CHECK (%I.vector_dims(embedding) = %s)',
        part, part || '_model', c.embedding_model, part || '_dimensions', ext, c.dimensions
    );
END
$$;

COMMENT ON FUNCTION memora.set_collection_vector_check(bigint) IS
    'Allow only vectors of the collection''s embedding model and dimensions into its partition.';


CREATE OR REPLACE FUNCTION memora.collection_storage_trigger()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part text;
    parent record;
    grant_ record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        EXECUTE format('DROP TABLE IF EXISTS memora.%I', memora.embedding_partition(OLD.id));
        EXECUTE format('DROP FUNCTION IF EXISTS memora.%I(%I.vector, integer)', memora.nearest_function(OLD.id),
                       memora.vector_schema());
        RETURN OLD;
    END IF;

    part := memora.embedding_partition(NEW.id);
    IF TG_OP = 'INSERT' THEN
        EXECUTE format(
            'CREATE TABLE memora.%I PARTITION OF memora.embedding FOR VALUES IN (%s)', part, NEW.id
        );
        PERFORM memora.set_collection_vector_check(NEW.id);
        PERFORM memora.create_collection_index(NEW.id);
        -- Whoever creates it (the service's role, a superuser in psql), the partition is the parent's: same owner,
        -- same grants (the SQL roles of migration 0007), since the search functions read partitions by name.
        SELECT c.relowner::regrole, c.relacl INTO parent FROM pg_class c WHERE c.oid = 'memora.embedding'::regclass;
        EXECUTE format('ALTER TABLE memora.%I OWNER TO %s', part, parent.relowner);
        FOR grant_ IN
            SELECT a.grantee::regrole AS grantee, a.privilege_type
            FROM aclexplode(parent.relacl) a
            WHERE a.grantee <> 0 AND a.grantee <> parent.relowner::oid
        LOOP
            EXECUTE format('GRANT %s ON memora.%I TO %s', grant_.privilege_type, part, grant_.grantee);
        END LOOP;
        RETURN NEW;
    END IF;

    IF (NEW.embedding_model, NEW.dimensions) IS DISTINCT FROM (OLD.embedding_model, OLD.dimensions) THEN
        -- Re-validates stored vectors: fails, and so rolls the update back, if any no longer fit.
        PERFORM memora.set_collection_vector_check(NEW.id);
    END IF;
    IF (NEW.metric, NEW.storage, NEW.dimensions, NEW.hnsw_m, NEW.hnsw_ef_construction)
       IS DISTINCT FROM (OLD.metric, OLD.storage, OLD.dimensions, OLD.hnsw_m, OLD.hnsw_ef_construction) THEN
        PERFORM memora.create_collection_index(NEW.id);
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER collection_storage_insert
    AFTER INSERT ON memora.collection
    FOR EACH ROW EXECUTE FUNCTION memora.collection_storage_trigger();

CREATE OR REPLACE TRIGGER collection_storage_update
    AFTER UPDATE OF embedding_model, dimensions, metric, storage, hnsw_m, hnsw_ef_construction
    ON memora.collection
    FOR EACH ROW EXECUTE FUNCTION memora.collection_storage_trigger();

-- BEFORE, so the partition goes at once and the cascade that follows finds no vectors to delete.
CREATE OR REPLACE TRIGGER collection_storage_delete
    BEFORE DELETE ON memora.collection
    FOR EACH ROW EXECUTE FUNCTION memora.collection_storage_trigger();

-- The nearest-neighbour functions of the collections there are (a migration run dropped them with the others).
SELECT memora.create_nearest_function(id) FROM memora.collection;
