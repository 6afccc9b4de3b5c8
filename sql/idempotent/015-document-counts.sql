-- requires: 0011 (memora.document_count)
--
-- A collection's documents by status, kept by statement-level triggers on memora.document (migration 0011): each
-- statement that adds, removes or moves documents between statuses appends its signed changes to
-- memora.document_count, one row per collection and status it changed. Rows are only ever appended, so writers take
-- no lock here: uploads and workers do not queue on a counter, and no lock order against text_stats (003), which
-- chunk writers take, can deadlock. The table has no foreign key to memora.collection for the same reason (its check
-- would lock the collection's row after the documents'); a trigger on memora.collection removes a deleted
-- collection's rows. MVCC makes a statement's rows visible exactly when its documents are.
--
-- memora.document_counts sums a collection's rows (a count without reading a document); workers call
-- memora.compact_document_count when a collection has many rows, which folds them into one per status.

-- SECURITY DEFINER: a role that may write documents (the SQL writer role, migration 0007) is granted nothing on
-- memora.document_count, and needs nothing: the counts are written as the function's owner, Memora's.
-- Under Citus (docs/scaling.md) triggers fire on a table's shards, memora.document_102008 and the like: tables of
-- the same schema named after it with a shard id, which only the schema's owner can create.
CREATE OR REPLACE FUNCTION memora.is_shard_of(relation regclass, of_table regclass)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.relnamespace = t.relnamespace AND r.relname ~ ('^' || t.relname || '_[0-9]+$')
    FROM pg_class r, pg_class t
    WHERE r.oid = relation AND t.oid = of_table
$$;

CREATE OR REPLACE FUNCTION memora.document_count_changes()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Counts come from memora.document alone (the function runs as its owner: a trigger on another table must not
    -- reach it, and PUBLIC may not execute it either, below).
    IF TG_RELID <> 'memora.document'::regclass AND NOT memora.is_shard_of(TG_RELID, 'memora.document') THEN
        RAISE EXCEPTION 'memora.document_count_changes() counts memora.document only, not %', TG_RELID::regclass;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM memora.document_count;
        RETURN NULL;
    END IF;
    -- Each branch names only the transition tables its event has. A statement's rows count +1 where they are now and
    -- -1 where they were (an UPDATE that moves a document to another status, or even another collection, is both);
    -- what nets to 0 is not written. Documents of a collection being deleted are skipped: its rows go with it.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO memora.document_count (collection_id, status, n)
        SELECT d.collection_id, d.status, count(*) FROM new_rows d
        WHERE EXISTS (SELECT FROM memora.collection c WHERE c.id = d.collection_id)
        GROUP BY 1, 2;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO memora.document_count (collection_id, status, n)
        SELECT d.collection_id, d.status, -count(*) FROM old_rows d
        WHERE EXISTS (SELECT FROM memora.collection c WHERE c.id = d.collection_id)
        GROUP BY 1, 2;
    ELSE
        INSERT INTO memora.document_count (collection_id, status, n)
        SELECT d.collection_id, d.status, sum(d.n)
        FROM (SELECT collection_id, status, 1 AS n FROM new_rows
              UNION ALL
              SELECT collection_id, status, -1 FROM old_rows) d
        WHERE EXISTS (SELECT FROM memora.collection c WHERE c.id = d.collection_id)
        GROUP BY 1, 2
        HAVING sum(d.n) <> 0;
    END IF;
    RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION memora.document_count_changes() FROM PUBLIC;

COMMENT ON FUNCTION memora.document_count_changes() IS
    'AFTER statement trigger on memora.document: append the statement''s changes to the counts by status.';

CREATE OR REPLACE TRIGGER document_count_insert
    AFTER INSERT ON memora.document
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memora.document_count_changes();

CREATE OR REPLACE TRIGGER document_count_update
    AFTER UPDATE ON memora.document
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memora.document_count_changes();

CREATE OR REPLACE TRIGGER document_count_delete
    AFTER DELETE ON memora.document
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memora.document_count_changes();

CREATE OR REPLACE TRIGGER document_count_truncate
    AFTER TRUNCATE ON memora.document
    FOR EACH STATEMENT EXECUTE FUNCTION memora.document_count_changes();


CREATE OR REPLACE FUNCTION memora.collection_counts_gone()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_RELID <> 'memora.collection'::regclass AND NOT memora.is_shard_of(TG_RELID, 'memora.collection') THEN
        RAISE EXCEPTION 'memora.collection_counts_gone() is for memora.collection only, not %', TG_RELID::regclass;
    END IF;
    DELETE FROM memora.document_count c USING old_rows o WHERE c.collection_id = o.id;
    RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION memora.collection_counts_gone() FROM PUBLIC;

COMMENT ON FUNCTION memora.collection_counts_gone() IS
    'AFTER DELETE statement trigger on memora.collection: remove the deleted collections'' document counts.';

CREATE OR REPLACE TRIGGER collection_counts_gone
    AFTER DELETE ON memora.collection
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memora.collection_counts_gone();


CREATE OR REPLACE FUNCTION memora.document_counts(p_collection_id bigint)
RETURNS TABLE (status text, documents bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.status, sum(c.n)::bigint
    FROM memora.document_count c
    WHERE c.collection_id = p_collection_id
    GROUP BY c.status
    HAVING sum(c.n) <> 0
$$;

COMMENT ON FUNCTION memora.document_counts(bigint) IS
    'A collection''s documents by status, from the appended counts (no document is read).';


CREATE OR REPLACE FUNCTION memora.compact_document_count(p_collection_id bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    folded integer;
BEGIN
    -- One compaction of a collection at a time (two would wait on each other's deleted rows); another caller skips.
    IF NOT pg_try_advisory_xact_lock(hashtextextended('memora.document_count', p_collection_id)) THEN
        RETURN 0;
    END IF;
    -- Rows a collection's deletion missed (they were being folded as it ran): removed, not folded.
    IF NOT EXISTS (SELECT FROM memora.collection WHERE id = p_collection_id) THEN
        DELETE FROM memora.document_count WHERE collection_id = p_collection_id;
        GET DIAGNOSTICS folded = ROW_COUNT;
        RETURN folded;
    END IF;
    WITH gone AS (
        DELETE FROM memora.document_count WHERE collection_id = p_collection_id RETURNING status, n
    ), sums AS (
        INSERT INTO memora.document_count (collection_id, status, n)
        SELECT p_collection_id, status, sum(n) FROM gone GROUP BY status HAVING sum(n) <> 0
    )
    SELECT count(*) INTO folded FROM gone;
    RETURN folded;
END
$$;

COMMENT ON FUNCTION memora.compact_document_count(bigint) IS
    'Fold a collection''s count rows into one per status; returns how many rows were folded (0: another is at it).';
