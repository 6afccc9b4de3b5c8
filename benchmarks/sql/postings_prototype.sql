-- A study, not part of the product (benchmarks/postings_study.py applies it to a scratch database; issue 15).
--
-- The study's two scorers over BM25 postings, beside memora.bm25_candidates. The postings themselves are the
-- product's since migration 0008 (memora.posting, kept by the triggers of sql/idempotent/013-search-postings.sql);
-- the study ran first with its own copy of that table and those triggers, identical to them.

-- The query's terms with their idf, rarest first, as bm25_candidates computes them (the same numeric expression,
-- cast to double precision as its array is), and the collection's parameters.
CREATE OR REPLACE FUNCTION memora.postings_query(
    collection text,
    query text,
    OUT collection_id bigint,
    OUT k1 double precision,
    OUT b double precision,
    OUT avglen double precision,
    OUT lexemes text[],
    OUT idfs double precision[]
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.id, c.bm25_k1::double precision, c.bm25_b::double precision,
           s.total_length::double precision / s.chunks,
           ARRAY(SELECT t.lexeme FROM memora.term_stats t
                 WHERE t.collection_id = c.id AND t.lexeme = ANY (memora.search_terms(c.language, query))
                 ORDER BY t.df, t.lexeme),
           ARRAY(SELECT ln(1 + (s.chunks - t.df + 0.5) / (t.df + 0.5))::double precision FROM memora.term_stats t
                 WHERE t.collection_id = c.id AND t.lexeme = ANY (memora.search_terms(c.language, query))
                 ORDER BY t.df, t.lexeme)
    FROM memora.collection c JOIN memora.text_stats s ON s.collection_id = c.id
    WHERE c.name = collection AND s.chunks > 0
$$;


-- (a) Every posting of every query term, summed per chunk. The score is written as bm25_candidates writes it,
-- (k1 + 1) * sum of idf * (1 - K / (K + tf)) with K = k1 * (1 - b + b * len / avglen), so that only the order of the
-- additions differs.
CREATE OR REPLACE FUNCTION memora.bm25_postings(collection text, query text, k integer)
RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q record := memora.postings_query(collection, query);
BEGIN
    IF q.collection_id IS NULL OR cardinality(q.lexemes) = 0 OR k <= 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT p.chunk_id, (q.k1 + 1) * sum(t.idf * (1 - kv.v / (kv.v + p.tf)))
    FROM unnest(q.lexemes, q.idfs) t (lexeme, idf)
    JOIN memora.posting p ON p.collection_id = q.collection_id AND p.lexeme = t.lexeme
    CROSS JOIN LATERAL (SELECT q.k1 * (1 - q.b + q.b * p.len / q.avglen)) kv (v)
    GROUP BY p.chunk_id
    ORDER BY 2 DESC, 1
    LIMIT k;
END
$$;


-- (b) MaxScore over postings, exact. A term adds less than idf * (k1 + 1) to a chunk's score (its bound). Pass 1
-- reads the postings of the rarest terms (up to about FIRST_PASS postings, at least k chunks when there are that many)
-- and completes those chunks' scores from the other terms' postings of those chunks only (a B-tree probe per
-- chunk and term, which the index answers in key order). Its k-th score is the bar. The commonest terms whose bounds
-- together do not reach the bar are non-essential: a chunk that has none but them cannot enter the top k, so their
-- posting lists are never read in full. Pass 2 reads the postings of the terms left in between (essential), for the
-- chunks pass 1 has not scored, drops those whose partial score plus the non-essential bounds cannot reach the bar,
-- and completes the rest from the non-essential terms by probes.
CREATE OR REPLACE FUNCTION memora.bm25_postings_maxscore(
    collection text,
    query text,
    k integer,
    first_pass integer DEFAULT 1000
)
RETURNS TABLE (chunk_id bigint, score double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q record := memora.postings_query(collection, query);
    n integer;
    dfs bigint[];
    bounds double precision[];
    nhead integer;          -- terms 1..nhead are pass 1's
    nessential integer;     -- terms nhead+1..nessential are pass 2's essential terms, the others non-essential
    rest double precision;  -- the bounds of terms nessential+1..n together
    ids bigint[];
    scores double precision[];
    seen bigint[];          -- the chunks pass 1 scored (every chunk with one of terms 1..nhead)
    bar double precision;
    more_ids bigint[];
    more_scores double precision[];
    -- Bounds and scores are sums of doubles taken in different orders: a bar lowered by this much keeps every
    -- chunk that could tie.
    slack constant double precision := 1e-9;
BEGIN
    n := coalesce(cardinality(q.lexemes), 0);
    IF q.collection_id IS NULL OR n = 0 OR k <= 0 THEN
        RETURN;
    END IF;
    dfs := ARRAY(SELECT t.df FROM unnest(q.lexemes) l JOIN memora.term_stats t
                 ON t.collection_id = q.collection_id AND t.lexeme = l
                 ORDER BY t.df, t.lexeme);
    bounds := ARRAY(SELECT x * (q.k1 + 1) FROM unnest(q.idfs) x);
    nhead := 1;
    WHILE nhead < n AND ((SELECT sum(x) FROM unnest(dfs[:nhead]) x) < k
                         OR (SELECT sum(x) FROM unnest(dfs[:nhead + 1]) x) <= first_pass) LOOP
        nhead := nhead + 1;
    END LOOP;

    WITH head AS (
        SELECT p.chunk_id, sum(t.idf * (1 - kv.v / (kv.v + p.tf))) AS s
        FROM unnest(q.lexemes[:nhead], q.idfs[:nhead]) t (lexeme, idf)
        JOIN memora.posting p ON p.collection_id = q.collection_id AND p.lexeme = t.lexeme
        CROSS JOIN LATERAL (SELECT q.k1 * (1 - q.b + q.b * p.len / q.avglen)) kv (v)
        GROUP BY p.chunk_id
    ),
    tail AS (
        SELECT p.chunk_id, sum(t.idf * (1 - kv.v / (kv.v + p.tf))) AS s
        FROM unnest(q.lexemes[nhead + 1:], q.idfs[nhead + 1:]) t (lexeme, idf)
        JOIN memora.posting p ON p.collection_id = q.collection_id AND p.lexeme = t.lexeme
        CROSS JOIN LATERAL (SELECT q.k1 * (1 - q.b + q.b * p.len / q.avglen)) kv (v)
        WHERE p.chunk_id = ANY (ARRAY(SELECT h.chunk_id FROM head h))
        GROUP BY p.chunk_id
    ),
    scored AS (
        SELECT h.chunk_id, (q.k1 + 1) * (h.s + coalesce(t.s, 0)) AS score
        FROM head h LEFT JOIN tail t USING (chunk_id)
    )
    SELECT (SELECT array_agg(h.chunk_id) FROM head h),
           array_agg(b.chunk_id ORDER BY b.score DESC, b.chunk_id),
           array_agg(b.score ORDER BY b.score DESC, b.chunk_id)
    INTO seen, ids, scores
    FROM (SELECT * FROM scored ORDER BY score DESC, chunk_id LIMIT k) b;

    IF nhead < n THEN
        bar := CASE WHEN coalesce(cardinality(ids), 0) >= k THEN scores[k] - slack ELSE -1 END;
        nessential := n;
        rest := 0;
        WHILE nessential > nhead AND rest + bounds[nessential] < bar LOOP
            rest := rest + bounds[nessential];
            nessential := nessential - 1;
        END LOOP;
        IF nessential > nhead THEN
            WITH essential AS (
                SELECT p.chunk_id, sum(t.idf * (1 - kv.v / (kv.v + p.tf))) AS s
                FROM unnest(q.lexemes[nhead + 1:nessential], q.idfs[nhead + 1:nessential]) t (lexeme, idf)
                JOIN memora.posting p ON p.collection_id = q.collection_id AND p.lexeme = t.lexeme
                CROSS JOIN LATERAL (SELECT q.k1 * (1 - q.b + q.b * p.len / q.avglen)) kv (v)
                WHERE p.chunk_id NOT IN (SELECT unnest(seen))
                GROUP BY p.chunk_id
            ),
            hopeful AS (
                SELECT e.chunk_id, e.s FROM essential e WHERE (q.k1 + 1) * e.s + rest >= bar
            ),
            tail AS (
                SELECT p.chunk_id, sum(t.idf * (1 - kv.v / (kv.v + p.tf))) AS s
                FROM unnest(q.lexemes[nessential + 1:], q.idfs[nessential + 1:]) t (lexeme, idf)
                JOIN memora.posting p ON p.collection_id = q.collection_id AND p.lexeme = t.lexeme
                CROSS JOIN LATERAL (SELECT q.k1 * (1 - q.b + q.b * p.len / q.avglen)) kv (v)
                WHERE p.chunk_id = ANY (ARRAY(SELECT h.chunk_id FROM hopeful h))
                GROUP BY p.chunk_id
            )
            SELECT array_agg(b.chunk_id), array_agg(b.score)
            INTO more_ids, more_scores
            FROM (SELECT h.chunk_id, (q.k1 + 1) * (h.s + coalesce(t.s, 0)) AS score
                  FROM hopeful h LEFT JOIN tail t USING (chunk_id)
                  ORDER BY 2 DESC, 1 LIMIT k) b;
            SELECT array_agg(r.id ORDER BY r.score DESC, r.id), array_agg(r.score ORDER BY r.score DESC, r.id)
            INTO ids, scores
            FROM (SELECT r.id, r.score FROM unnest(ids || more_ids, scores || more_scores) r (id, score)
                  ORDER BY r.score DESC, r.id LIMIT k) r;
        END IF;
    END IF;
    RETURN QUERY SELECT r.id, r.score FROM unnest(ids, scores) r (id, score);
END
$$;
