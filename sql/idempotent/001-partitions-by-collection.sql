-- requires: 0001 until 0009 (memora.collection, memora.embedding partitioned by collection)
--
-- One partition of memora.embedding per collection, up to migration 0009 (014-embedding-versions.sql from there on).
--
-- Each collection gets its own partition, a CHECK that only vectors of the collection's model and dimensions enter
-- it, an HNSW index whose operator class matches the collection's metric and storage type, and the nearest function
-- over it (001-collection-storage.sql makes each). The triggers below keep them in step with memora.collection.

-- What search needs to know of the vectors it reads, for any layout (014-embedding-versions.sql has its own): here
-- there is one set, the collection's partition, with the collection's settings; it has no version number.
CREATE OR REPLACE FUNCTION memora.active_version(c memora.collection)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT NULL::integer $$;

CREATE OR REPLACE FUNCTION memora.active_version_of(collection_id bigint)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT NULL::integer $$;

CREATE OR REPLACE FUNCTION memora.version_of(
    c memora.collection, version integer,
    OUT tbl text, OUT storage text, OUT dimensions integer, OUT metric text, OUT adapted boolean
)
LANGUAGE sql STABLE
AS $$ SELECT memora.embedding_partition(c.id), c.storage, c.dimensions, c.metric, false $$;

COMMENT ON FUNCTION memora.version_of(memora.collection, integer) IS
    'The table of a collection''s vectors and their storage, dimensions and metric: its partition''s (no adapter).';


CREATE OR REPLACE FUNCTION memora.create_collection_index(p_collection_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c memora.collection;
BEGIN
    SELECT * INTO STRICT c FROM memora.collection WHERE id = p_collection_id;
    PERFORM memora.make_vector_index(memora.embedding_partition(c.id), c.storage, c.dimensions, c.metric, c.hnsw_m,
                                     c.hnsw_ef_construction);
    PERFORM memora.create_nearest_function(p_collection_id);
END
$$;

COMMENT ON FUNCTION memora.create_collection_index(bigint) IS
    '(Re)build the HNSW index of a collection from its metric, storage type, dimensions, m and ef_construction, '
    'and the function that walks it (memora.nearest_function).';


CREATE OR REPLACE FUNCTION memora.create_nearest_function(p_collection_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c memora.collection;
BEGIN
    SELECT * INTO STRICT c FROM memora.collection WHERE id = p_collection_id;
    PERFORM memora.make_nearest_function(c.id, NULL, memora.embedding_partition(c.id), c.storage, c.dimensions,
                                         c.metric);
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
BEGIN
    SELECT * INTO STRICT c FROM memora.collection WHERE id = p_collection_id;
    PERFORM memora.set_vector_check(memora.embedding_partition(c.id), c.embedding_model, c.dimensions);
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
BEGIN
    IF TG_OP = 'DELETE' THEN
        EXECUTE format('DROP TABLE IF EXISTS memora.%I', memora.embedding_partition(OLD.id));
        EXECUTE format('DROP FUNCTION IF EXISTS memora.%I(%I.vector, integer)', memora.nearest_function(OLD.id, NULL),
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
        PERFORM memora.adopt_embedding_owner(part);
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

-- For the owner of Memora's objects only (012-privileges.sql says why).
REVOKE EXECUTE ON FUNCTION
    memora.create_collection_index(bigint),
    memora.create_nearest_function(bigint),
    memora.set_collection_vector_check(bigint)
FROM PUBLIC;

-- The nearest-neighbour functions of the collections there are (a migration run dropped them with the others).
SELECT memora.create_nearest_function(id) FROM memora.collection;
