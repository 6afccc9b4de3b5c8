-- requires: 0009 (memora.embedding_version, memora.collection.active_version, memora.embedding.version)
--
-- Versions of a collection's vectors, from migration 0009 (001-partitions-by-collection.sql before it).
--
-- memora.embedding is partitioned by collection (embedding_c<id>), and each collection's partition by version
-- (embedding_c<id>_v<n>): a version is a table with a CHECK that only vectors of its model and dimensions enter it
-- and an HNSW index whose operator class matches its metric and storage type (001-collection-storage.sql makes each).
-- memora.embedding_version holds each version's settings; memora.collection.active_version names the one searches
-- read, and the collection's own model columns are that version's. The triggers below keep the tables in step with
-- both: a collection inserted from psql gets its partition and version 1 from its own columns, as one created
-- through the REST API does.

-- What search needs to know of the vectors it reads (001-partitions-by-collection.sql has its own).
CREATE OR REPLACE FUNCTION memora.active_version(c memora.collection)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT c.active_version $$;

CREATE OR REPLACE FUNCTION memora.active_version_of(collection_id bigint)
RETURNS integer
LANGUAGE sql STABLE
AS $$ SELECT c.active_version FROM memora.collection c WHERE c.id = active_version_of.collection_id $$;

CREATE OR REPLACE FUNCTION memora.version_of(
    c memora.collection, version integer,
    OUT tbl text, OUT storage text, OUT dimensions integer, OUT metric text, OUT adapted boolean
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT memora.version_table(v.collection_id, v.number), v.storage, v.dimensions, v.metric, v.adapter IS NOT NULL
    INTO tbl, storage, dimensions, metric, adapted
    FROM memora.embedding_version v
    WHERE v.collection_id = c.id AND v.number = coalesce(version_of.version, c.active_version);
    IF NOT FOUND THEN
        PERFORM memora.argument_error('version', format('collection %L has no embedding version %s', c.name, version));
    END IF;
END
$$;

COMMENT ON FUNCTION memora.version_of(memora.collection, integer) IS
    'The table of one version of a collection''s vectors (VERSION NULL: the active one), their storage, dimensions '
    'and metric, and whether it has an adapter; 22023 (DETAIL version) for a version the collection does not have.';


-- A version with an adapter searches with W q for a query vector q: row i of W is embedding_adapter.weights where
-- row = i, and (W q)_i = weights . q = -(weights <#> q). Made through format() for the schema of pgvector's operator.
DO $$
BEGIN
    EXECUTE format($sql$
        CREATE OR REPLACE FUNCTION memora.adapt_query(p_collection_id bigint, p_version integer, query %1$I.vector)
        RETURNS %1$I.vector
        LANGUAGE sql STABLE
        SET search_path = pg_catalog, pg_temp
        AS $body$
            SELECT array_agg(-(a.weights OPERATOR(%1$I.<#>) query) ORDER BY a.row)::%1$I.vector
            FROM memora.embedding_adapter a
            WHERE a.collection_id = p_collection_id AND a.version = p_version
        $body$
        $sql$, memora.vector_schema());
END
$$;

COMMENT ON FUNCTION memora.adapt_query(bigint, integer, vector) IS
    'QUERY mapped by the adapter of a collection''s embedding version P_VERSION (W QUERY); NULL if it has none.';


CREATE OR REPLACE FUNCTION memora.active_embedding_version(p_collection_id bigint)
RETURNS memora.embedding_version
LANGUAGE sql STABLE
AS $$
    SELECT e.*
    FROM memora.embedding_version e JOIN memora.collection c ON c.id = e.collection_id AND c.active_version = e.number
    WHERE e.collection_id = p_collection_id
$$;

COMMENT ON FUNCTION memora.active_embedding_version(bigint) IS 'The row of a collection''s active embedding version.';


CREATE OR REPLACE FUNCTION memora.create_collection_index(p_collection_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v memora.embedding_version := memora.active_embedding_version(p_collection_id);
BEGIN
    PERFORM memora.make_vector_index(memora.version_table(v.collection_id, v.number), v.storage, v.dimensions,
                                     v.metric, v.hnsw_m, v.hnsw_ef_construction);
    PERFORM memora.make_nearest_function(v.collection_id, v.number, memora.version_table(v.collection_id, v.number),
                                         v.storage, v.dimensions, v.metric, v.adapter IS NOT NULL);
END
$$;

COMMENT ON FUNCTION memora.create_collection_index(bigint) IS
    '(Re)build the HNSW index of a collection''s active version from its metric, storage type, dimensions, m and '
    'ef_construction, and the function that walks it (memora.nearest_function).';


CREATE OR REPLACE FUNCTION memora.create_nearest_function(p_collection_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v memora.embedding_version;
BEGIN
    FOR v IN SELECT * FROM memora.embedding_version WHERE collection_id = p_collection_id LOOP
        PERFORM memora.make_nearest_function(v.collection_id, v.number, memora.version_table(v.collection_id, v.number),
                                             v.storage, v.dimensions, v.metric, v.adapter IS NOT NULL);
    END LOOP;
END
$$;

COMMENT ON FUNCTION memora.create_nearest_function(bigint) IS
    '(Re)make the functions (memora.nearest_function) that walk the HNSW index of each version of a collection.';


CREATE OR REPLACE FUNCTION memora.set_collection_vector_check(p_collection_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v memora.embedding_version := memora.active_embedding_version(p_collection_id);
BEGIN
    PERFORM memora.set_vector_check(memora.version_table(v.collection_id, v.number), v.embedding_model, v.dimensions);
END
$$;

COMMENT ON FUNCTION memora.set_collection_vector_check(bigint) IS
    'Allow only vectors of the embedding model and dimensions of a collection''s active version into its table.';


-- A version's table, CHECKs and index, made when its row is, rebuilt when its settings change, dropped with it.
CREATE OR REPLACE FUNCTION memora.embedding_version_trigger()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tbl text;
    active boolean;
BEGIN
    IF TG_OP = 'DELETE' THEN
        EXECUTE format('DROP TABLE IF EXISTS memora.%I', memora.version_table(OLD.collection_id, OLD.number));
        EXECUTE format('DROP FUNCTION IF EXISTS memora.%I(%I.vector, integer)',
                       memora.nearest_function(OLD.collection_id, OLD.number), memora.vector_schema());
        RETURN OLD;
    END IF;

    tbl := memora.version_table(NEW.collection_id, NEW.number);
    active := EXISTS (SELECT FROM memora.collection c WHERE c.id = NEW.collection_id AND c.active_version = NEW.number);
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('CREATE TABLE memora.%I PARTITION OF memora.%I FOR VALUES IN (%s)',
                       tbl, memora.embedding_partition(NEW.collection_id), NEW.number);
        PERFORM memora.adopt_embedding_owner(tbl);
        PERFORM memora.set_vector_check(tbl, NEW.embedding_model, NEW.dimensions);
        PERFORM memora.make_vector_index(tbl, NEW.storage, NEW.dimensions, NEW.metric, NEW.hnsw_m,
                                         NEW.hnsw_ef_construction);
        PERFORM memora.make_nearest_function(NEW.collection_id, NEW.number, tbl, NEW.storage, NEW.dimensions,
                                             NEW.metric, NEW.adapter IS NOT NULL);
        RETURN NEW;
    END IF;

    IF (NEW.embedding_model, NEW.dimensions) IS DISTINCT FROM (OLD.embedding_model, OLD.dimensions) THEN
        -- Re-validates stored vectors: fails, and so rolls the update back, if any no longer fit.
        PERFORM memora.set_vector_check(tbl, NEW.embedding_model, NEW.dimensions);
    END IF;
    IF (NEW.metric, NEW.storage, NEW.dimensions, NEW.hnsw_m, NEW.hnsw_ef_construction)
       IS DISTINCT FROM (OLD.metric, OLD.storage, OLD.dimensions, OLD.hnsw_m, OLD.hnsw_ef_construction) THEN
        PERFORM memora.make_vector_index(tbl, NEW.storage, NEW.dimensions, NEW.metric, NEW.hnsw_m,
                                         NEW.hnsw_ef_construction);
        PERFORM memora.make_nearest_function(NEW.collection_id, NEW.number, tbl, NEW.storage, NEW.dimensions,
                                             NEW.metric, NEW.adapter IS NOT NULL);
    END IF;
    IF active THEN
        -- The collection's columns are the active version's: a change made here reaches them (a change made there
        -- came here, and finds nothing to change back).
        UPDATE memora.collection
        SET embedding_provider = NEW.embedding_provider, embedding_model = NEW.embedding_model,
            dimensions = NEW.dimensions, metric = NEW.metric, storage = NEW.storage, hnsw_m = NEW.hnsw_m,
            hnsw_ef_construction = NEW.hnsw_ef_construction
        WHERE id = NEW.collection_id
          AND (embedding_provider, embedding_model, dimensions, metric, storage, hnsw_m, hnsw_ef_construction)
              IS DISTINCT FROM (NEW.embedding_provider, NEW.embedding_model, NEW.dimensions, NEW.metric, NEW.storage,
                                NEW.hnsw_m, NEW.hnsw_ef_construction);
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER embedding_version_insert
    AFTER INSERT ON memora.embedding_version
    FOR EACH ROW EXECUTE FUNCTION memora.embedding_version_trigger();

CREATE OR REPLACE TRIGGER embedding_version_update
    AFTER UPDATE OF embedding_provider, embedding_model, dimensions, metric, storage, hnsw_m, hnsw_ef_construction
    ON memora.embedding_version
    FOR EACH ROW EXECUTE FUNCTION memora.embedding_version_trigger();

-- A version's table is named and bounded by its key: the key does not change.
CREATE OR REPLACE FUNCTION memora.embedding_version_key_trigger()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', DETAIL = 'number',
        MESSAGE = format('an embedding version keeps its collection and number (collection %s, version %s)',
                         OLD.collection_id, OLD.number);
END
$$;

CREATE OR REPLACE TRIGGER embedding_version_key
    BEFORE UPDATE OF collection_id, number ON memora.embedding_version
    FOR EACH ROW WHEN ((NEW.collection_id, NEW.number) IS DISTINCT FROM (OLD.collection_id, OLD.number))
    EXECUTE FUNCTION memora.embedding_version_key_trigger();

CREATE OR REPLACE TRIGGER embedding_version_delete
    AFTER DELETE ON memora.embedding_version
    FOR EACH ROW EXECUTE FUNCTION memora.embedding_version_trigger();


-- The collection's model columns are its active version's. Making another version active copies its settings into
-- them (each version has its own nearest function, so nothing else changes); changing them on the collection changes
-- the active version (its CHECKs, index and nearest function follow, as they did for the collection's partition).
CREATE OR REPLACE FUNCTION memora.collection_active_version_trigger()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v memora.embedding_version;
BEGIN
    IF (NEW.embedding_provider, NEW.embedding_model, NEW.dimensions, NEW.metric, NEW.storage, NEW.hnsw_m,
        NEW.hnsw_ef_construction)
       IS DISTINCT FROM (OLD.embedding_provider, OLD.embedding_model, OLD.dimensions, OLD.metric, OLD.storage,
                         OLD.hnsw_m, OLD.hnsw_ef_construction) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', DETAIL = 'active_version',
            MESSAGE = 'change the active version or its settings, not both in one statement';
    END IF;
    SELECT * INTO v FROM memora.embedding_version WHERE collection_id = NEW.id AND number = NEW.active_version
    FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', DETAIL = 'active_version',
            MESSAGE = format('collection %L has no embedding version %s', NEW.name, NEW.active_version);
    END IF;
    NEW.embedding_provider := v.embedding_provider;
    NEW.embedding_model := v.embedding_model;
    NEW.dimensions := v.dimensions;
    NEW.metric := v.metric;
    NEW.storage := v.storage;
    NEW.hnsw_m := v.hnsw_m;
    NEW.hnsw_ef_construction := v.hnsw_ef_construction;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION memora.collection_storage_trigger()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- Its versions' tables go with it; their rows go by the cascade that follows.
        EXECUTE format('DROP TABLE IF EXISTS memora.%I', memora.embedding_partition(OLD.id));
        RETURN OLD;
    END IF;

    IF TG_OP = 'INSERT' THEN
        part := memora.embedding_partition(NEW.id);
        EXECUTE format('CREATE TABLE memora.%I PARTITION OF memora.embedding FOR VALUES IN (%s) '
                       'PARTITION BY LIST (version)', part, NEW.id);
        PERFORM memora.adopt_embedding_owner(part);
        -- A new collection has no chunks: its first version lacks no vector.
        INSERT INTO memora.embedding_version (collection_id, number, status, embedding_provider, embedding_model,
                                              dimensions, metric, storage, hnsw_m, hnsw_ef_construction)
        VALUES (NEW.id, NEW.active_version, 'ready', NEW.embedding_provider, NEW.embedding_model, NEW.dimensions,
                NEW.metric, NEW.storage, NEW.hnsw_m, NEW.hnsw_ef_construction);
        RETURN NEW;
    END IF;

    -- (A change of active_version alone needs nothing here: each version has its nearest function.)
    IF NEW.active_version IS NOT DISTINCT FROM OLD.active_version THEN
        UPDATE memora.embedding_version
        SET embedding_provider = NEW.embedding_provider, embedding_model = NEW.embedding_model,
            dimensions = NEW.dimensions, metric = NEW.metric, storage = NEW.storage, hnsw_m = NEW.hnsw_m,
            hnsw_ef_construction = NEW.hnsw_ef_construction
        WHERE collection_id = NEW.id AND number = NEW.active_version
          AND (embedding_provider, embedding_model, dimensions, metric, storage, hnsw_m, hnsw_ef_construction)
              IS DISTINCT FROM (NEW.embedding_provider, NEW.embedding_model, NEW.dimensions, NEW.metric, NEW.storage,
                                NEW.hnsw_m, NEW.hnsw_ef_construction);
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER collection_active_version
    BEFORE UPDATE OF active_version ON memora.collection
    FOR EACH ROW WHEN (NEW.active_version IS DISTINCT FROM OLD.active_version)
    EXECUTE FUNCTION memora.collection_active_version_trigger();

CREATE OR REPLACE TRIGGER collection_storage_insert
    AFTER INSERT ON memora.collection
    FOR EACH ROW EXECUTE FUNCTION memora.collection_storage_trigger();

CREATE OR REPLACE TRIGGER collection_storage_update
    AFTER UPDATE OF embedding_provider, embedding_model, dimensions, metric, storage, hnsw_m, hnsw_ef_construction
    ON memora.collection
    FOR EACH ROW EXECUTE FUNCTION memora.collection_storage_trigger();

-- BEFORE, so the tables go at once and the cascade that follows finds no vectors to delete.
CREATE OR REPLACE TRIGGER collection_storage_delete
    BEFORE DELETE ON memora.collection
    FOR EACH ROW EXECUTE FUNCTION memora.collection_storage_trigger();

-- New chunks lack the vectors of every version but the active one (whose vectors the worker writes with them): a
-- ready version becomes building again, and the worker fills it (app/versions/backfill.py). A hint for the worker,
-- not a promise: activating a version counts what it lacks (app/versions/service.py).
CREATE OR REPLACE FUNCTION memora.chunk_versions_trigger()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE memora.embedding_version v
    SET status = 'building', backfill_after = least(v.backfill_after, n.first_id - 1)
    FROM (SELECT collection_id, min(id) AS first_id FROM new_chunks GROUP BY collection_id) n,
         memora.collection c
    WHERE v.collection_id = n.collection_id AND c.id = n.collection_id AND v.number <> c.active_version
      AND (v.status = 'ready' OR (v.status = 'building' AND v.backfill_after >= n.first_id));
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER chunk_versions
    AFTER INSERT ON memora.chunk
    REFERENCING NEW TABLE AS new_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION memora.chunk_versions_trigger();

-- For the owner of Memora's objects only (012-privileges.sql says why).
REVOKE EXECUTE ON FUNCTION
    memora.create_collection_index(bigint),
    memora.create_nearest_function(bigint),
    memora.set_collection_vector_check(bigint)
FROM PUBLIC;

-- The nearest-neighbour functions of the versions there are (a migration run dropped them with the others).
SELECT memora.create_nearest_function(id) FROM memora.collection;
