-- requires: 0002 (memora.text_stats, memora.term_stats)
--
-- Corpus statistics for BM25, kept exact by statement-level triggers on memora.chunk.
--
-- BM25 needs, per collection, the number of chunks and their total length (for the average length) and, per
-- lexeme, the number of chunks that contain it (document frequency). Both are maintained here, in the same
-- transaction as the chunk writes, from the triggers' transition tables: one aggregate per statement, so the
-- worker's COPY of a batch costs one upsert of the lexemes it touched, not one per row.
--
-- Concurrency: every trigger run updates the collection's text_stats row before any term_stats row, so writers
-- of one collection queue on that row (until they commit) and never deadlock on lexemes. Writers of different
-- collections do not meet.
--
-- A chunk's length is its number of distinct lexemes, length(tsv), title and text together as they are searched: a
-- cheap stand-in for its token count after stemming and stop-word removal (the positions in its tsvector), which
-- benchmarks/search_quality.py compares it with.

CREATE OR REPLACE FUNCTION memora.apply_text_stats(chunks memora.text_stats[], terms memora.term_stats[])
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    -- Lock order: the collections' text_stats rows first, then their lexemes, each in key order.
    INSERT INTO memora.text_stats AS s (collection_id, chunks, total_length)
    SELECT d.collection_id, d.chunks, d.total_length
    FROM unnest(chunks) d
    WHERE d.chunks <> 0 OR d.total_length <> 0
    ORDER BY d.collection_id
    ON CONFLICT (collection_id) DO UPDATE
        SET chunks = s.chunks + excluded.chunks, total_length = s.total_length + excluded.total_length;
    INSERT INTO memora.term_stats AS t (collection_id, lexeme, df)
    SELECT d.collection_id, d.lexeme, d.df
    FROM unnest(terms) d
    WHERE d.df <> 0
    ORDER BY d.collection_id, d.lexeme
    ON CONFLICT (collection_id, lexeme) DO UPDATE SET df = t.df + excluded.df;
    -- A statement of its own: in the same statement it would not see the rows the upsert just updated.
    DELETE FROM memora.term_stats t
    USING unnest(terms) d
    WHERE d.df < 0 AND t.collection_id = d.collection_id AND t.lexeme = d.lexeme AND t.df <= 0;
$$;

COMMENT ON FUNCTION memora.apply_text_stats(memora.text_stats[], memora.term_stats[]) IS
    'Add signed changes to text_stats and term_stats (lexemes whose count reaches 0 are removed).';


CREATE OR REPLACE FUNCTION memora.chunk_text_stats()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    signed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT collection_id, tsv, 1 AS sign FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT collection_id, tsv, -1 AS sign FROM old_rows'
        -- Updates that leave the text alone (renumbering the chunks of an edited document) change nothing.
        ELSE 'SELECT n.collection_id, s.tsv, s.sign
              FROM new_rows n JOIN old_rows o ON o.collection_id = n.collection_id AND o.id = n.id
              CROSS JOIN LATERAL (VALUES (n.tsv, 1), (o.tsv, -1)) s (tsv, sign)
              WHERE n.tsv IS DISTINCT FROM o.tsv'
    END;
BEGIN
    -- The transition tables a trigger has depend on its event, hence one statement put together per event.
    -- Chunks of a collection being deleted are skipped: its statistics go with it (foreign keys).
    EXECUTE format(
        $sql$
        WITH d AS MATERIALIZED (%s),
        live AS (SELECT * FROM d WHERE EXISTS (SELECT FROM memora.collection c WHERE c.id = d.collection_id))
        SELECT memora.apply_text_stats(
            ARRAY(
                SELECT ROW(collection_id, sum(sign), sum(sign * length(tsv)))::memora.text_stats
                FROM live GROUP BY collection_id
            ),
            ARRAY(
                SELECT ROW(l.collection_id, u.lexeme, sum(l.sign))::memora.term_stats
                FROM live l, unnest(l.tsv) u GROUP BY l.collection_id, u.lexeme
            )
        )
        $sql$,
        signed
    );
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION memora.chunk_text_stats() IS
    'AFTER statement trigger on memora.chunk: apply the statement''s chunks to text_stats and term_stats.';

CREATE OR REPLACE TRIGGER chunk_text_stats_insert
    AFTER INSERT ON memora.chunk
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memora.chunk_text_stats();

CREATE OR REPLACE TRIGGER chunk_text_stats_update
    AFTER UPDATE ON memora.chunk
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memora.chunk_text_stats();

CREATE OR REPLACE TRIGGER chunk_text_stats_delete
    AFTER DELETE ON memora.chunk
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memora.chunk_text_stats();


CREATE OR REPLACE FUNCTION memora.refresh_text_stats(p_collection_id bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    -- Lock order as in the trigger: the collection's text_stats row, then its lexemes.
    INSERT INTO memora.text_stats (collection_id, chunks, total_length)
    SELECT p_collection_id, count(*), coalesce(sum(length(c.tsv)), 0)
    FROM memora.chunk c WHERE c.collection_id = p_collection_id
    ON CONFLICT (collection_id) DO UPDATE SET chunks = excluded.chunks, total_length = excluded.total_length;
    DELETE FROM memora.term_stats WHERE collection_id = p_collection_id;
    INSERT INTO memora.term_stats (collection_id, lexeme, df)
    SELECT p_collection_id, u.lexeme, count(*)
    FROM memora.chunk c, unnest(c.tsv) u
    WHERE c.collection_id = p_collection_id
    GROUP BY u.lexeme;
$$;

COMMENT ON FUNCTION memora.refresh_text_stats(bigint) IS
    'Recount a collection''s BM25 statistics from its chunks (the triggers keep them right; this is for repair).';
