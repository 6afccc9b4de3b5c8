-- requires: 0011 (memora.document_count)
--
-- A collection's documents by status, kept by statement-level triggers on memora.document (migration 0011): each
-- statement that adds, removes or moves documents between statuses appends its signed changes to
-- memora.document_count, one row per collection and status it changed. Rows are only ever appended, so writers take
-- no lock here: uploads and workers do not queue on a counter, and no lock order against text_stats (003), which
-- chunk writers take, can deadlock. MVCC makes a statement's rows visible exactly when its documents are.
--
-- memora.document_counts sums a collection's rows (a count without reading a document); workers call
-- memora.compact_document_count when a collection has many rows, which folds them into one per status.

-- SECURITY DEFINER: a role that may write documents (the SQL writer role, migration 0007) is granted nothing on
-- memora.document_count, and needs nothing: the counts are written as the function's owner, Memora's.
CREATE OR REPLACE FUNCTION memora.document_count_changes()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Each branch names only the transition tables its event has. Documents of a collection being deleted are
    -- skipped: its counts go with it (foreign key).
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
        SELECT s.collection_id, s.status, sum(s.n)
        FROM new_rows n
        JOIN old_rows o ON o.collection_id = n.collection_id AND o.id = n.id
        CROSS JOIN LATERAL (VALUES (n.collection_id, n.status, 1), (o.collection_id, o.status, -1))
            s (collection_id, status, n)
        WHERE n.status IS DISTINCT FROM o.status
        GROUP BY 1, 2
        HAVING sum(s.n) <> 0;
    END IF;
    RETURN NULL;
END
$$;

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
