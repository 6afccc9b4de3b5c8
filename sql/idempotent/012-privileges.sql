-- requires: 0007 (the SQL roles that memora.meta names: sql_role_reader, sql_role_writer, sql_role_owner)
--
-- Who may call which function. PostgreSQL lets PUBLIC execute every new function; the functions that build or
-- drop storage, or rewrite statistics, are for the owner of Memora's objects only (the service's role and
-- migrations are members of it): a reader or writer calling them gets "permission denied for function" rather
-- than a half-run DDL statement. Everything else stays callable, but only by roles with USAGE on the schema (the
-- reader and those who hold it). The reader is granted the search and batch functions by name as well, so that
-- they stay its own if a database administrator revokes EXECUTE from PUBLIC on the whole schema.
--
-- Grants on functions go with the functions: the idempotent layer drops and re-creates them, and this file runs
-- after those before it on every such run (a later file revokes what it adds itself). Migration 0007 holds the grants
-- on tables.

REVOKE EXECUTE ON FUNCTION
    memora.set_vector_check(text, text, integer),
    memora.make_vector_index(text, text, integer, text, integer, integer),
    memora.make_nearest_function(bigint, integer, text, text, integer, text, boolean),
    memora.adopt_embedding_owner(text),
    memora.refresh_text_stats(bigint),
    memora.apply_text_stats(memora.text_stats[], memora.term_stats[]),
    memora.create_example_index(bigint, integer, jsonb),
    memora.drop_example_index(bigint),
    memora.create_snapshot(text, text, text)
FROM PUBLIC;

DO $$
DECLARE
    reader text := (SELECT value FROM memora.meta WHERE key = 'sql_role_reader');
    routine regprocedure;
BEGIN
    IF reader IS NULL OR NOT EXISTS (SELECT FROM pg_roles WHERE rolname = reader) THEN
        RETURN;  -- the migrating user could not create roles (meta: sql_roles = skipped)
    END IF;
    FOR routine IN
        SELECT p.oid::regprocedure
        FROM pg_proc p
        WHERE p.pronamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'memora.meta'::regclass)
          AND p.proname IN ('search_text', 'search_vector', 'search_hybrid', 'search_text_v1', 'search_vector_v1',
                            'search_vector_v2', 'search_hybrid_v2', 'adapt_query',
                            'search_hybrid_v1', 'compile_filter', 'shuffle_positions', 'shuffle_position',
                            'split_of', 'example_text', 'content_hash', 'embedding_partition',
                            'version_table', 'snapshot_diff_v1')
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', routine, reader);
    END LOOP;
END
$$;
