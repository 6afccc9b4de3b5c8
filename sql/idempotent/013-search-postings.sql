-- requires: 0008 (memora.posting)
--
-- BM25 over postings (migration 0008): statement-level triggers keep one row per lexeme and chunk beside the
-- statistics of 003-text-stats.sql, and memora.bm25_candidates, which replaces 005's for databases at 0008 or
-- later, scores the k best chunks of a collection from them and never reads a tsvector. Exact: the same top k as
-- BM25 computed from the tsvectors, ties (scores equal to 1e-9) ordered by chunk id.

-- Postings: one row of memora.posting per lexeme and chunk, with the lexeme's tf in the chunk (its positions in the
-- tsvector, 1 when it has none) and the chunk's length (its distinct lexemes, length(tsv), as the statistics count
-- it). Written and removed by the statement that writes or removes the chunk, so MVCC makes them visible exactly when
-- the chunk is, and they need no lock of their own (the statistics take theirs, 003). A statement's rows go in key
-- order.

CREATE OR REPLACE FUNCTION memora.chunk_postings()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Each branch names only the transition tables its event has (PL/pgSQL plans a statement when it first runs).
    -- Chunks of a collection being deleted go too: postings have no foreign key to cascade along.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO memora.posting (collection_id, lexeme, chunk_id, tf, len)
        SELECT n.collection_id, u.lexeme, n.id, coalesce(cardinality(u.positions), 1), length(n.tsv)
        FROM new_rows n, unnest(n.tsv) u
        ORDER BY 1, 2, 3;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM memora.posting p
        USING (SELECT o.collection_id, o.id, u.lexeme FROM old_rows o, unnest(o.tsv) u) d
        WHERE p.collection_id = d.collection_id AND p.lexeme = d.lexeme AND p.chunk_id = d.id;
    ELSE
        -- Updates that leave the text alone (renumbering the chunks of an edited document) change nothing. A
        -- changed chunk's length changes every posting of it, so all of its postings are written again.
        DELETE FROM memora.posting p
        USING (SELECT o.collection_id, o.id, u.lexeme
               FROM old_rows o JOIN new_rows n ON n.collection_id = o.collection_id AND n.id = o.id, unnest(o.tsv) u
               WHERE n.tsv IS DISTINCT FROM o.tsv) d
        WHERE p.collection_id = d.collection_id AND p.lexeme = d.lexeme AND p.chunk_id = d.id;
        INSERT INTO memora.posting (collection_id, lexeme, chunk_id, tf, len)
        SELECT n.collection_id, u.lexeme, n.id, coalesce(cardinality(u.positions), 1), length(n.tsv)
        FROM new_rows n JOIN old_rows o ON o.collection_id = n.collection_id AND o.id = n.id, unnest(n.tsv) u
        WHERE n.tsv IS DISTINCT FROM o.tsv
        ORDER BY 1, 2, 3;
    END IF;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION memora.chunk_postings() IS
    'AFTER statement trigger on memora.chunk: write the postings of the statement''s new chunks, remove its old ones.';

CREATE OR REPLACE TRIGGER chunk_postings_insert
    AFTER INSERT ON memora.chunk
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memora.chunk_postings();

CREATE OR REPLACE TRIGGER chunk_postings_update
    AFTER UPDATE ON memora.chunk
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memora.chunk_postings();

CREATE OR REPLACE TRIGGER chunk_postings_delete
    AFTER DELETE ON memora.chunk
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memora.chunk_postings();


CREATE OR REPLACE FUNCTION memora.refresh_postings(p_collection_id bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM memora.posting WHERE collection_id = p_collection_id;
    INSERT INTO memora.posting (collection_id, lexeme, chunk_id, tf, len)
    SELECT c.collection_id, u.lexeme, c.id, coalesce(cardinality(u.positions), 1), length(c.tsv)
    FROM memora.chunk c, unnest(c.tsv) u
    WHERE c.collection_id = p_collection_id
    ORDER BY 1, 2, 3;
$$;

COMMENT ON FUNCTION memora.refresh_postings(bigint) IS
    'Write a collection''s postings again from its chunks (the triggers keep them right; this is for repair).';


CREATE OR REPLACE FUNCTION memora.bm25_candidates(
    p_collection_id bigint,
    p_query text,
    p_limit integer,
    p_filter jsonb DEFAULT NULL
)
RETURNS TABLE (chunk_id bigint, score double precision, rank integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- Plans kept for the session, whoever calls it (the search functions set the same): planned again on every call, as
-- PostgreSQL chose to, a call on a few hundred chunks took twice as long (benchmarks/search_fixed_cost.py).
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    c memora.collection;
    s memora.text_stats;
    f record;
    lexemes text[];          -- the query's terms that occur in the collection, rarest first
    dfs bigint[];
    weights double precision[];  -- idf * (k1 + 1) of each term: more than it can add to a chunk's score
    n integer;
    k0 double precision;     -- a chunk of length len has K = k0 + kl * len
    kl double precision;
    total bigint := 0;       -- the query's postings
    budget bigint;
    head integer := 1;       -- terms 1..head find the bar
    got bigint;              -- their postings
    essential integer;       -- terms 1..essential are read in full, the others only for the chunks that need them
    rest double precision := 0;  -- the weights of terms essential+1..n together
    bar double precision;    -- a score k chunks reach: the k-th best of chunks scored in full
    -- Scores are sums of doubles, added in whatever order a plan reads the postings: ties are scores equal to 1e-9
    -- (rounded so, then ordered by chunk id), and the bounds keep every chunk within that of the bar.
    slack constant double precision := 2e-9;
BEGIN
    SELECT * INTO STRICT c FROM memora.collection WHERE id = p_collection_id;
    SELECT * INTO s FROM memora.text_stats WHERE collection_id = p_collection_id;
    -- Compiled first, so a bad filter is refused whether or not the collection holds any of the query's terms.
    IF p_filter IS NOT NULL THEN
        f := memora.compile_filter(p_filter, 7, 8);
    END IF;
    IF s.chunks IS NULL OR s.chunks <= 0 OR s.total_length <= 0 OR p_limit <= 0 THEN
        RETURN;
    END IF;
    -- Okapi BM25 in Lucene's form: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), and a term's part of a chunk's score
    -- idf * (k1 + 1) * tf / (tf + K), K = k1 * (1 - b + b * len / avglen), with tf and len from the posting.
    SELECT array_agg(t.lexeme ORDER BY t.df, t.lexeme), array_agg(t.df ORDER BY t.df, t.lexeme),
           array_agg(ln(1 + (s.chunks - t.df + 0.5) / (t.df + 0.5)) * (c.bm25_k1 + 1) ORDER BY t.df, t.lexeme)
    INTO lexemes, dfs, weights
    FROM memora.term_stats t
    WHERE t.collection_id = p_collection_id AND t.lexeme = ANY (memora.search_terms(c.language, p_query));
    IF lexemes IS NULL THEN
        RETURN;
    END IF;
    n := cardinality(lexemes);
    k0 := c.bm25_k1 * (1 - c.bm25_b);
    kl := c.bm25_k1 * c.bm25_b * s.chunks / s.total_length;
    FOR i IN 1..n LOOP
        total := total + dfs[i];
    END LOOP;

    IF p_filter IS NOT NULL THEN
        -- Every chunk with one of the terms is scored, then the filter keeps those it passes (the $7, $8 of
        -- compile_filter's predicate over c and d).
        RETURN QUERY EXECUTE format(
            $sql$
            SELECT r.chunk_id, r.score, (row_number() OVER (ORDER BY r.score DESC, r.chunk_id))::integer
            FROM (SELECT x.chunk_id, round(x.s * 1e9) / 1e9 AS score
                  FROM (SELECT p.chunk_id, sum(t.w * p.tf / (p.tf + $5 + $6 * p.len)) AS s
                        FROM unnest($2, $3) t (lexeme, w)
                        JOIN memora.posting p ON p.collection_id = $1 AND p.lexeme = t.lexeme
                        GROUP BY p.chunk_id) x
                  JOIN memora.chunk c ON c.collection_id = $1 AND c.id = x.chunk_id
                  JOIN memora.document d ON d.collection_id = c.collection_id AND d.id = c.document_id
                  WHERE %s
                  ORDER BY 2 DESC, 1
                  LIMIT $4) r
            $sql$, f.predicate)
        USING p_collection_id, lexemes, weights, p_limit, k0, kl, f.keys, f.vals;
        RETURN;
    END IF;

    -- Top-k pruning as in MaxScore; the result is exact. Below 20,000 postings, or 1,000 a term for long queries
    -- (each term costs the passes an index scan or two), reading them all costs less than pruning does
    -- (memora.bm25_exhaustive, a setting, moves the line: tests set it to 0).
    budget := coalesce(nullif(current_setting('memora.bm25_exhaustive', true), '')::bigint,
                       greatest(20000, 1000 * n));
    IF total > budget AND n > 1 THEN
        -- Pass 1, the bar: the chunks that have one of the rarest terms (their postings up to about
        -- memora.bm25_first_pass, 1,000 by default, and at least k chunks when there are that many) are scored in
        -- full, the other terms' postings read for those chunks only (one index scan a term, over the sorted
        -- chunk ids); the k-th best of them is a score k chunks reach.
        budget := coalesce(nullif(current_setting('memora.bm25_first_pass', true), '')::bigint, 1000);
        got := dfs[1];
        WHILE head < n AND (got < p_limit OR got + dfs[head + 1] <= budget) LOOP
            head := head + 1;
            got := got + dfs[head];
        END LOOP;
        -- Partial scores and the other terms' postings are added up by one aggregate, not joined: the planner
        -- cannot count the postings of a list of chunks, and a join it thinks is of one row became a nested loop
        -- over both sides (30 ms for a 36-term query on NFCorpus).
        WITH first AS (
            SELECT p.chunk_id, sum(t.w * p.tf / (p.tf + k0 + kl * p.len)) AS s
            FROM unnest(lexemes[:head], weights[:head]) t (lexeme, w)
            JOIN memora.posting p ON p.collection_id = p_collection_id AND p.lexeme = t.lexeme
            GROUP BY p.chunk_id
        ),
        scored AS (
            SELECT x.chunk_id, sum(x.s) AS s
            FROM (SELECT f1.chunk_id, f1.s FROM first f1
                  UNION ALL
                  SELECT p.chunk_id, t.w * p.tf / (p.tf + k0 + kl * p.len)
                  FROM unnest(lexemes[head + 1:], weights[head + 1:]) t (lexeme, w)
                  JOIN memora.posting p ON p.collection_id = p_collection_id AND p.lexeme = t.lexeme
                       AND p.chunk_id = ANY (ARRAY(SELECT f2.chunk_id FROM first f2 ORDER BY 1))) x
            GROUP BY x.chunk_id
        )
        SELECT (array_agg(x.s ORDER BY x.s DESC))[p_limit]
        INTO bar
        FROM scored x;
        -- The commonest terms whose weights add up to less than the bar are not essential: a chunk that has none
        -- but them scores less than the bar and cannot enter the top k.
        essential := n;
        WHILE bar IS NOT NULL AND essential > 1 AND rest + weights[essential] < bar - slack LOOP
            rest := rest + weights[essential];
            essential := essential - 1;
        END LOOP;
        IF essential < n THEN
            -- Pass 2: the essential terms' postings in full. Of the chunks they give, those whose partial score
            -- with every other term's weight added can reach the bar are scored in full, the other terms' postings
            -- read for those chunks only.
            RETURN QUERY
            WITH hopeful AS (
                SELECT p.chunk_id, sum(t.w * p.tf / (p.tf + k0 + kl * p.len)) AS s
                FROM unnest(lexemes[:essential], weights[:essential]) t (lexeme, w)
                JOIN memora.posting p ON p.collection_id = p_collection_id AND p.lexeme = t.lexeme
                GROUP BY p.chunk_id
                HAVING sum(t.w * p.tf / (p.tf + k0 + kl * p.len)) + rest >= bar - slack
            )
            SELECT r.chunk_id, r.score, (row_number() OVER (ORDER BY r.score DESC, r.chunk_id))::integer
            FROM (SELECT x.chunk_id, round(sum(x.s) * 1e9) / 1e9 AS score
                  FROM (SELECT h1.chunk_id, h1.s FROM hopeful h1
                        UNION ALL
                        SELECT p.chunk_id, t.w * p.tf / (p.tf + k0 + kl * p.len)
                        FROM unnest(lexemes[essential + 1:], weights[essential + 1:]) t (lexeme, w)
                        JOIN memora.posting p ON p.collection_id = p_collection_id AND p.lexeme = t.lexeme
                             AND p.chunk_id = ANY (ARRAY(SELECT h2.chunk_id FROM hopeful h2 ORDER BY 1))) x
                  GROUP BY x.chunk_id
                  ORDER BY 2 DESC, 1
                  LIMIT p_limit) r;
            RETURN;
        END IF;
    END IF;
    -- Every posting of every term, summed per chunk.
    RETURN QUERY
    SELECT r.chunk_id, r.score, (row_number() OVER (ORDER BY r.score DESC, r.chunk_id))::integer
    FROM (SELECT p.chunk_id, round(sum(t.w * p.tf / (p.tf + k0 + kl * p.len)) * 1e9) / 1e9 AS score
          FROM unnest(lexemes, weights) t (lexeme, w)
          JOIN memora.posting p ON p.collection_id = p_collection_id AND p.lexeme = t.lexeme
          GROUP BY p.chunk_id
          ORDER BY 2 DESC, 1
          LIMIT p_limit) r;
END
$$;

COMMENT ON FUNCTION memora.bm25_candidates(bigint, text, integer, jsonb) IS
    'The P_LIMIT best chunks of a collection by BM25 (k1, b of the collection) for a query, with a filter; scores '
    'rounded to 1e-9, ties by chunk id.';


REVOKE EXECUTE ON FUNCTION memora.refresh_postings(bigint) FROM PUBLIC;
