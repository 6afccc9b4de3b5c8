-- requires: 0002 (memora.text_stats, memora.term_stats, collection.bm25_k1 and bm25_b)
--
-- BM25 over the chunks' tsvectors: a query's terms, the tsqueries made of them, and the k best chunks of a collection
-- (memora.bm25_candidates), with the statistics sql/idempotent/003-text-stats.sql keeps.

CREATE OR REPLACE FUNCTION memora.search_terms(language regconfig, query text)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT array_agg(DISTINCT lexeme ORDER BY lexeme) FROM unnest(to_tsvector(language, coalesce(query, ''))) $$;

COMMENT ON FUNCTION memora.search_terms(regconfig, text) IS
    'The distinct lexemes of a query under a text search configuration (stemmed, stop words removed).';


CREATE OR REPLACE FUNCTION memora.lexeme_tsquery(lexemes text[])
RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- Lexemes are quoted for the tsquery parser ('' for a quote, \\ for a backslash); they are normalised
    -- already, so the cast does not stem them again.
    SELECT string_agg('''' || replace(replace(t, '\', '\\'), '''', '''''') || '''', ' | ')::tsquery
    FROM unnest(lexemes) t
$$;

COMMENT ON FUNCTION memora.lexeme_tsquery(text[]) IS 'lexeme1 | lexeme2 | ...: matches what has any of LEXEMES.';


CREATE OR REPLACE FUNCTION memora.search_tsquery(language regconfig, query text)
RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT memora.lexeme_tsquery(memora.search_terms(language, query)) $$;

COMMENT ON FUNCTION memora.search_tsquery(regconfig, text) IS
    'The OR query of search_text: any of the query''s lexemes. Use it with ts_headline to highlight results.';


CREATE OR REPLACE FUNCTION memora.bm25_bound_query(
    lexemes text[],
    bounds double precision[],
    threshold double precision,
    depth integer DEFAULT NULL
)
RETURNS tsquery
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer := coalesce(cardinality(lexemes), 0);
    rest double precision;    -- the bounds of lexemes j..n together
    alternatives text[] := '{}';
    inner_query tsquery;
BEGIN
    -- A chunk's bound is the sum of BOUNDS over the LEXEMES it has. Its bound is above THRESHOLD if, for the first
    -- lexeme j it has, bounds[j] is above it, or its lexemes after j are worth more than THRESHOLD - bounds[j]: one
    -- alternative per j, each the same question one level down. Lexemes come in decreasing bound, so the loop stops
    -- once those left cannot reach THRESHOLD. At depth 0 an alternative is lexeme j alone, which matches more
    -- chunks than needed (never fewer). The depth keeps the tsquery small: the alternatives at depth d number up to
    -- C(n, d + 1), so 3 levels for up to 8 lexemes, 2 for 12, 1 for 20, and none for more.
    depth := coalesce(depth, CASE WHEN n <= 8 THEN 3 WHEN n <= 12 THEN 2 WHEN n <= 20 THEN 1 ELSE 0 END);
    SELECT coalesce(sum(b), 0) INTO rest FROM unnest(bounds) b;
    FOR j IN 1..n LOOP
        EXIT WHEN rest <= threshold;
        IF bounds[j] > threshold OR depth <= 0 THEN
            alternatives := alternatives || memora.lexeme_tsquery(lexemes[j:j])::text;
        ELSE
            inner_query := memora.bm25_bound_query(lexemes[j + 1:], bounds[j + 1:], threshold - bounds[j], depth - 1);
            IF inner_query IS NOT NULL THEN
                alternatives := alternatives
                    || format('%s & (%s)', memora.lexeme_tsquery(lexemes[j:j]), inner_query);
            END IF;
        END IF;
        rest := rest - bounds[j];
    END LOOP;
    RETURN nullif(array_to_string(alternatives, ' | '), '')::tsquery;
END
$$;

COMMENT ON FUNCTION memora.bm25_bound_query(text[], double precision[], double precision, integer) IS
    'A tsquery that matches every tsvector whose BOUNDS (one per lexeme of LEXEMES, in decreasing order) add up to '
    'more than THRESHOLD; NULL if none can. Exact to DEPTH levels (by default as many as keep it small), a superset '
    'beyond.';


CREATE OR REPLACE FUNCTION memora.bm25_candidates(
    p_collection_id bigint,
    p_query text,
    p_limit integer,
    p_filter jsonb DEFAULT NULL
)
RETURNS TABLE (chunk_id bigint, score double precision, rank integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c memora.collection;
    s memora.text_stats;
    f record;
    lexemes text[];     -- the query's terms that occur in the collection, rarest first
    dfs bigint[];
    idfs double precision[];
    essential integer;       -- how many of the rarest terms pass 1 reads
    bounds double precision[];  -- idf * (k1 + 1) of each term: the most it adds to a chunk's score
    terms tsquery[];         -- a tsquery of each term
    bar double precision;    -- the score pass 2's chunks must beat
    wanted tsquery;          -- pass 2's chunks
    bound_check text;
    ids bigint[];
    scores double precision[];
    more_ids bigint[];       -- pass 2's best
    more_scores double precision[];
    statement text;
    joins text;
BEGIN
    SELECT * INTO STRICT c FROM memora.collection WHERE id = p_collection_id;
    SELECT * INTO s FROM memora.text_stats WHERE collection_id = p_collection_id;
    -- Compiled first, so a bad filter is refused whether or not the collection holds any of the query's terms.
    f := memora.compile_filter(p_filter, 9, 10);
    IF s.chunks IS NULL OR s.chunks <= 0 OR p_limit <= 0 THEN
        RETURN;
    END IF;
    -- Okapi BM25 in Lucene's form: idf = ln(1 + (N - df + 0.5) / (df + 0.5)).
    SELECT array_agg(t.lexeme ORDER BY t.df, t.lexeme), array_agg(t.df ORDER BY t.df, t.lexeme),
           array_agg(ln(1 + (s.chunks - t.df + 0.5) / (t.df + 0.5)) ORDER BY t.df, t.lexeme)
    INTO lexemes, dfs, idfs
    FROM memora.term_stats t
    WHERE t.collection_id = p_collection_id AND t.lexeme = ANY (memora.search_terms(c.language, p_query));
    IF lexemes IS NULL THEN
        RETURN;
    END IF;
    -- score = sum over the query's terms in the chunk of idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avglen)),
    -- written idf * (k1 + 1) * (1 - K / (tf + K)) so that tf appears once, with K = k1 * (1 - b + b * len / avglen);
    -- len is the chunk's number of distinct terms, tf the number of positions of the term in its tsvector.
    -- Up to 12 terms, each term's tf is read without unnesting the tsvector: with every weight 1, ts_rank of a
    -- one-term query is (1 + 1/4 + ... + 1/tf^2) / (pi^2 / 6), and 1 / (pi^2 / 6 * (1 - rank)) - 1/2 rounds to tf
    -- (exactly, for every tf a tsvector can hold: 0 to 255; tests/integration/search/test_sql_bm25.py checks it). That
    -- costs a third of unnesting, but one call a term, so longer queries unnest the query's terms of the tsvector:
    -- marked with weight C, which chunk tsvectors never have (titles are A, text B), and kept.
    -- The three %s are the filter's join, its predicate, and a check of the chunk's bound ($11: a tsquery per term,
    -- $12: its bound, $13: the score to beat); $3 says which chunks to score.
    statement := format(
        $sql$
        SELECT array_agg(id), array_agg(score)
        FROM (SELECT c.id, ($6 + 1) * (%s) AS score
              FROM memora.chunk c %%s
              CROSS JOIN LATERAL (SELECT $6 * (1 - $7 + $7 * length(c.tsv) / $5)) k (v)
              WHERE c.collection_id = $1 AND c.tsv @@ $3 AND %%s AND %%s
              ORDER BY 2 DESC, 1
              LIMIT $8) best
        $sql$,
        CASE WHEN cardinality(lexemes) <= 12 THEN
            (SELECT string_agg(format('$4[%s] * (1 - coalesce(k.v / nullif(k.v + round(1 / (1.6449340668 * (1 - '
                                      'ts_rank(''{1,1,1,1}'', c.tsv, $11[%1$s]))) - 0.5), 0), 1))', i), ' + ')
             FROM generate_series(1, cardinality(lexemes)) i)
        ELSE
            'SELECT sum($4[array_position($2, u.lexeme)] * (1 - k.v / (coalesce(cardinality(u.positions), 1) + k.v)))
             FROM unnest(ts_filter(setweight(c.tsv, ''C'', $2), ''{c}'')) u'
        END
    );
    joins := CASE WHEN p_filter IS NULL THEN ''
                  ELSE 'JOIN memora.document d ON d.collection_id = c.collection_id AND d.id = c.document_id' END;
    bounds := ARRAY(SELECT x * (c.bm25_k1 + 1) FROM unnest(idfs) x);
    -- Top-k pruning as in MaxScore, in at most two passes; the result is exact. A chunk scores less than the sum of
    -- idf * (k1 + 1) over the query's terms it has (its bound). Pass 1 scores the chunks that have one of the rarest
    -- terms: up to about 1,000 postings, and at least P_LIMIT when there are that many. Its k-th best score is what
    -- the other chunks must beat, and pass 2 scores only those whose bound is above it. Which those are, the GIN
    -- index answers without reading a row: memora.bm25_bound_query writes the condition as a tsquery (with two
    -- common terms worth 3 each and a score of 5 to beat, a chunk must have both). Most chunks of common terms are
    -- left out that way (benchmarks/search_speed.py). Past 20 terms that tsquery would grow too large, and asks only
    -- for one of the terms a chunk needs; each chunk's bound is then checked before it is scored, with one @@ a
    -- term. (memora.bm25_first_pass, a setting, changes the 1,000: tests set it to 1 to make every query take
    -- pass 2.)
    SELECT count(*) INTO essential
    FROM unnest(dfs) WITH ORDINALITY x (df, i)
    WHERE i = 1
       OR (SELECT sum(y) FROM unnest(dfs[:i - 1]) y) < p_limit
       OR (SELECT sum(y) FROM unnest(dfs[:i]) y)
          <= coalesce(nullif(current_setting('memora.bm25_first_pass', true), '')::bigint, 1000);
    terms := ARRAY(SELECT memora.lexeme_tsquery(ARRAY[t]) FROM unnest(lexemes) t);
    EXECUTE format(statement, joins, f.predicate, 'true') INTO ids, scores
    USING p_collection_id, lexemes, memora.lexeme_tsquery(lexemes[:essential]), idfs,
          s.total_length::double precision / s.chunks, c.bm25_k1::double precision, c.bm25_b::double precision,
          p_limit, f.keys, f.vals, terms, bounds, 0::double precision;
    IF essential < cardinality(lexemes) THEN
        -- The chunks that hold none of pass 1's terms and could still beat its k-th score (all of them if it found
        -- fewer than k).
        bar := CASE WHEN coalesce(cardinality(ids), 0) >= p_limit THEN scores[p_limit] ELSE -1 END;
        wanted := memora.bm25_bound_query(lexemes[essential + 1:], bounds[essential + 1:], bar);
        -- Past 20 terms the tsquery asks only for one of the terms a chunk needs: each chunk's bound is checked too.
        bound_check := CASE WHEN cardinality(lexemes) - essential <= 20 THEN 'true' ELSE format('(%s) > $13', (
            SELECT string_agg(format('CASE WHEN c.tsv @@ $11[%s] THEN $12[%1$s] ELSE 0 END', i), ' + ')
            FROM generate_series(essential + 1, cardinality(lexemes)) i)) END;
        IF wanted IS NOT NULL THEN
            EXECUTE format(statement, joins, f.predicate, bound_check)
            INTO more_ids, more_scores
            USING p_collection_id, lexemes, wanted && !! memora.lexeme_tsquery(lexemes[:essential]), idfs,
                  s.total_length::double precision / s.chunks, c.bm25_k1::double precision,
                  c.bm25_b::double precision, p_limit, f.keys, f.vals, terms, bounds, bar;
            SELECT array_agg(r.id ORDER BY r.score DESC, r.id), array_agg(r.score ORDER BY r.score DESC, r.id)
            INTO ids, scores
            FROM (SELECT r.id, r.score FROM unnest(ids || more_ids, scores || more_scores) r (id, score)
                  ORDER BY r.score DESC, r.id LIMIT p_limit) r;
        END IF;
    END IF;
    RETURN QUERY SELECT r.id, r.score, r.rank::integer FROM unnest(ids, scores) WITH ORDINALITY r (id, score, rank);
END
$$;

COMMENT ON FUNCTION memora.bm25_candidates(bigint, text, integer, jsonb) IS
    'The P_LIMIT best chunks of a collection by BM25 (k1, b of the collection) for a query, with a filter.';

