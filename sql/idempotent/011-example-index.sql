-- requires: 0003 (memora.example's deleted_at, as the index's predicate reads it)
--
-- A dataset's example embeddings and their HNSW index, for near duplicates and leakage.
--
-- Examples of every dataset share memora.example.embedding, an untyped vector column that is NULL until
-- deduplication or the leakage report embeds the dataset (with the model the request names). Each dataset that has
-- been embedded gets a partial HNSW index of its own, ix_example_embedding_d<id>, written by the same
-- memora.hnsw_index_sql that writes every collection's index. Its predicate names the dimensions, so vectors of
-- another model (rows being re-embedded in the same transaction) stay out of it instead of failing its cast; its
-- comment records the model that filled it (JSON: provider, model, dimensions), so a request with another model
-- knows to embed again. app/training/quality/index.py drives it.

CREATE OR REPLACE FUNCTION memora.example_index_name(dataset_id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 'ix_example_embedding_d' || dataset_id $$;

COMMENT ON FUNCTION memora.example_index_name(bigint) IS
    'Name of the HNSW index over one dataset''s example embeddings.';


CREATE OR REPLACE FUNCTION memora.create_example_index(dataset_id bigint, dimensions integer, model jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ix text := memora.example_index_name(dataset_id);
BEGIN
    EXECUTE format('DROP INDEX IF EXISTS memora.%I', ix);
    EXECUTE memora.hnsw_index_sql(
        ix, 'example', 'vector', dimensions, 'cosine', 16, 64,
        format('dataset_id = %s AND %I.vector_dims(embedding) = %s AND deleted_at IS NULL',
               dataset_id, memora.vector_schema(), dimensions)
    );
    EXECUTE format('COMMENT ON INDEX memora.%I IS %L', ix, model::text);
END
$$;

COMMENT ON FUNCTION memora.create_example_index(bigint, integer, jsonb) IS
    '(Re)build the cosine HNSW index of one dataset''s example embeddings of DIMENSIONS, recording MODEL.';


CREATE OR REPLACE FUNCTION memora.drop_example_index(dataset_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('DROP INDEX IF EXISTS memora.%I', memora.example_index_name(dataset_id));
END
$$;

COMMENT ON FUNCTION memora.drop_example_index(bigint) IS 'Drop one dataset''s example embedding index, if any.';


CREATE OR REPLACE FUNCTION memora.dataset_index_trigger()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM memora.drop_example_index(OLD.id);
    RETURN OLD;
END
$$;

-- A deleted dataset takes its index with it, whoever deletes it (the REST API, the CLI, psql).
CREATE OR REPLACE TRIGGER dataset_index_delete
    BEFORE DELETE ON memora.dataset
    FOR EACH ROW EXECUTE FUNCTION memora.dataset_index_trigger();
