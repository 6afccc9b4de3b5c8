-- Search: BM25 over the chunks' tsvectors, HNSW over their vectors, and a fusion of the two (a convex combination of
-- normalised scores, or Reciprocal Rank Fusion).
--
-- The public functions take a collection name and return memora.search_hit rows:
--
--   memora.search_text(collection, query, k, filter)                              BM25, OR over the query's terms
--   memora.search_vector(collection, query_embedding, k, filter, ef_search, exact)
--   memora.search_hybrid(collection, query, query_embedding, k, filter, fusion, rrf_k, text_weight, vector_weight,
--                        candidates, ef_search)
--
-- Each is a thin wrapper over a _v1 function whose signature never changes; a new signature gets a _v2 and the
-- wrapper moves to it. The REST API calls the _v1 functions. Filters: sql/functions/004-filter.sql.
-- Errors: unknown collection -> SQLSTATE P0002 (no_data_found); bad arguments -> 22023 (invalid_parameter_value)
-- with the argument's name as DETAIL.

DO $$
BEGIN
    CREATE TYPE memora.search_hit AS (
        chunk_id bigint,
        document_id bigint,
        external_id text,
        ordinal integer,
        title text,
        text text,
        metadata jsonb,             -- the document's metadata
        chunk_metadata jsonb,       -- the chunk's own: headings, page
        char_start integer,         -- the chunk is document.content[char_start:char_end]
        char_end integer,
        score double precision,     -- what the rows are ordered by: BM25, similarity, or the fused score
        text_rank integer,          -- rank in the BM25 candidates (1 = best), NULL if not among them
        text_score double precision,
        vector_rank integer,        -- rank in the nearest-neighbour candidates, NULL if not among them
        vector_score double precision,  -- similarity: 1 - cosine distance, inner product, or -L2 distance
        vector_distance double precision
    );
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$$;


CREATE OR REPLACE FUNCTION memora.argument_error(argument text, reason text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = argument || ': ' || reason,
        DETAIL = argument;
END
$$;


CREATE OR REPLACE FUNCTION memora.search_collection(collection text)
RETURNS memora.collection
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c memora.collection;
BEGIN
    SELECT * INTO c FROM memora.collection WHERE name = search_collection.collection;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = format('collection %L does not exist', collection),
            DETAIL = 'collection';
    END IF;
    RETURN c;
END
$$;


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
    -- (exactly, for every tf a tsvector can hold: 0 to 255; tests/integration/test_search_sql.py checks it). That
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


CREATE OR REPLACE FUNCTION memora.hnsw_ef_search(requested integer, k integer)
RETURNS integer
LANGUAGE sql STABLE
AS $$
    -- REQUESTED, else the session's hnsw.ef_search if it was SET to other than pgvector's default of 40, else 64,
    -- which finds more of the true neighbours than 40 (0.96 of the top 10 against 0.93 on the passage queries of
    -- docs/benchmarks.md) for ~0.3 ms more. An HNSW scan returns at most ef_search rows, so it is at least K;
    -- pgvector allows at most 1,000 (past that, vector_candidates' iterative scan supplies the rest).
    SELECT least(greatest(
        coalesce(requested, nullif(nullif(current_setting('hnsw.ef_search', true), ''), '40')::integer, 64),
        k), 1000)
$$;

COMMENT ON FUNCTION memora.hnsw_ef_search(integer, integer) IS
    'The hnsw.ef_search of a vector search for K rows: REQUESTED, else the session''s if SET (not 40), else 64.';


CREATE OR REPLACE FUNCTION memora.vector_candidates(
    p_collection_id bigint,
    p_embedding vector,
    p_limit integer,
    p_filter jsonb DEFAULT NULL,
    p_ef_search integer DEFAULT NULL,
    p_exact boolean DEFAULT false
)
RETURNS TABLE (chunk_id bigint, distance double precision, rank integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c memora.collection;
    ext name := memora.vector_schema();
    f record;
    key text;
    query text;
    operator text;
    old_ef_search text := current_setting('hnsw.ef_search', true);
    old_iterative_scan text := current_setting('hnsw.iterative_scan', true);
BEGIN
    SELECT * INTO STRICT c FROM memora.collection WHERE id = p_collection_id;
    IF p_limit <= 0 THEN
        RETURN;
    END IF;
    f := memora.compile_filter(p_filter, 3, 4);
    operator := format('OPERATOR(%I.%s)', ext,
        CASE c.metric WHEN 'cosine' THEN '<=>' WHEN 'l2' THEN '<->' ELSE '<#>' END);
    IF p_exact THEN
        -- Not the indexed expression, so the planner scans every vector of the partition.
        key := 'e.embedding';
        query := '$1';
    ELSE
        key := format('(e.embedding::%I.%s(%s))', ext, c.storage, c.dimensions);
        query := format('$1::%I.%s(%s)', ext, c.storage, c.dimensions);
        PERFORM set_config('hnsw.ef_search', memora.hnsw_ef_search(p_ef_search, p_limit)::text, true);
        -- With a filter (or P_LIMIT over 1,000) the index scan goes on past ef_search candidates until LIMIT rows
        -- pass it (pgvector >= 0.8); relaxed order, so the rows are sorted again below.
        IF p_filter IS NOT NULL OR p_limit > 1000 THEN
            PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true);
        END IF;
    END IF;
    RETURN QUERY EXECUTE format(
        $sql$
        WITH nearest AS MATERIALIZED (
            SELECT e.chunk_id, %1$s %2$s %3$s AS distance
            FROM memora.%4$I e %5$s
            WHERE %6$s
            ORDER BY %1$s %2$s %3$s
            LIMIT $2
        )
        SELECT n.chunk_id, n.distance, (row_number() OVER (ORDER BY n.distance, n.chunk_id))::integer
        FROM nearest n
        ORDER BY n.distance, n.chunk_id
        $sql$,
        key, operator, query, memora.embedding_partition(p_collection_id),
        CASE WHEN p_filter IS NULL THEN ''
             ELSE 'JOIN memora.chunk c ON c.collection_id = e.collection_id AND c.id = e.chunk_id '
                  'JOIN memora.document d ON d.collection_id = c.collection_id AND d.id = c.document_id' END,
        f.predicate
    )
    USING p_embedding, p_limit, f.keys, f.vals;
    IF old_ef_search IS NOT NULL THEN
        PERFORM set_config('hnsw.ef_search', old_ef_search, true);
    END IF;
    IF old_iterative_scan IS NOT NULL THEN
        PERFORM set_config('hnsw.iterative_scan', old_iterative_scan, true);
    END IF;
END
$$;

COMMENT ON FUNCTION memora.vector_candidates(bigint, vector, integer, jsonb, integer, boolean) IS
    'The P_LIMIT nearest chunks of a collection to a vector (HNSW, or every vector if P_EXACT), with a filter.';


CREATE OR REPLACE FUNCTION memora.vector_similarity(metric text, distance double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE metric WHEN 'cosine' THEN 1 - distance ELSE -distance END
$$;

COMMENT ON FUNCTION memora.vector_similarity(text, double precision) IS
    'Similarity from a pgvector distance: 1 - cosine distance; inner product (<#> is its negative); -L2 distance.';


CREATE OR REPLACE FUNCTION memora.min_max(value double precision, low double precision, high double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN high > low THEN (value - low) / (high - low) WHEN value IS NOT NULL THEN 1 END $$;

COMMENT ON FUNCTION memora.min_max(double precision, double precision, double precision) IS
    'VALUE scaled from [LOW, HIGH] to [0, 1]; 1 when LOW = HIGH, NULL when VALUE is NULL.';


CREATE OR REPLACE FUNCTION memora.check_search_arguments(
    c memora.collection,
    k integer,
    ef_search integer,
    query_embedding vector
)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF k IS NULL OR k < 1 OR k > 1000 THEN
        PERFORM memora.argument_error('k', 'must be between 1 and 1000');
    ELSIF ef_search IS NOT NULL AND (ef_search < 1 OR ef_search > 1000) THEN
        PERFORM memora.argument_error('ef_search', 'must be between 1 and 1000');
    ELSIF query_embedding IS NOT NULL AND cardinality(query_embedding::real[]) <> c.dimensions THEN
        PERFORM memora.argument_error('query_embedding', format('has %s dimensions; collection %L has %s',
            cardinality(query_embedding::real[]), c.name, c.dimensions));
    END IF;
END
$$;

COMMENT ON FUNCTION memora.check_search_arguments(memora.collection, integer, integer, vector) IS
    'Refuse (22023, the argument''s name as DETAIL) a K, EF_SEARCH or QUERY_EMBEDDING that C cannot be searched with.';


CREATE OR REPLACE FUNCTION memora.search_hybrid_v1(
    collection text,
    query text,
    query_embedding vector,
    k integer,
    filter jsonb DEFAULT NULL,
    fusion text DEFAULT 'convex',
    rrf_k integer DEFAULT 60,
    text_weight double precision DEFAULT 1,
    vector_weight double precision DEFAULT 1,
    candidates integer DEFAULT NULL,
    ef_search integer DEFAULT NULL,
    exact boolean DEFAULT false
)
RETURNS SETOF memora.search_hit
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- One plan of the RETURN QUERY per session. PostgreSQL would plan it again on every call (a custom plan looks
-- cheaper, as it drops the candidate list not used), which cost 0.3-0.5 ms of a 1.7 ms vector search.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    c memora.collection := memora.search_collection(collection);
    depth integer := coalesce(candidates, 4 * k);
    use_text boolean := coalesce(btrim(query), '') <> '' AND text_weight > 0;
    use_vector boolean := query_embedding IS NOT NULL AND vector_weight > 0;
BEGIN
    PERFORM memora.check_search_arguments(c, k, ef_search, query_embedding);
    IF depth < k OR depth > 10000 THEN
        PERFORM memora.argument_error('candidates', 'must be between k and 10000');
    ELSIF fusion IS NULL OR fusion NOT IN ('convex', 'rrf') THEN
        PERFORM memora.argument_error('fusion', 'must be convex or rrf');
    ELSIF rrf_k IS NULL OR rrf_k < 0 THEN
        PERFORM memora.argument_error('rrf_k', 'must be 0 or more');
    ELSIF text_weight IS NULL OR text_weight < 0 OR text_weight = 'Infinity' THEN
        PERFORM memora.argument_error('text_weight', 'must be a finite number, 0 or more');
    ELSIF vector_weight IS NULL OR vector_weight < 0 OR vector_weight = 'Infinity' THEN
        PERFORM memora.argument_error('vector_weight', 'must be a finite number, 0 or more');
    ELSIF NOT use_text AND NOT use_vector THEN
        PERFORM memora.argument_error('query', 'give a query text, a query embedding, or both');
    END IF;
    RETURN QUERY
    WITH lexical AS (
        SELECT b.chunk_id, b.rank, b.score, min(b.score) OVER () AS low, max(b.score) OVER () AS high
        FROM memora.bm25_candidates(c.id, query, depth, filter) b
        WHERE use_text
    ),
    semantic AS (
        SELECT v.chunk_id, v.rank, v.distance, v.similarity, min(v.similarity) OVER () AS low,
               max(v.similarity) OVER () AS high
        FROM (SELECT n.*, memora.vector_similarity(c.metric, n.distance) AS similarity
              FROM memora.vector_candidates(c.id, query_embedding, depth, filter, ef_search, exact) n
              WHERE use_vector) v
    ),
    fused AS (
        SELECT coalesce(l.chunk_id, s.chunk_id) AS chunk_id,
               CASE fusion
                   WHEN 'rrf' THEN
                       coalesce(text_weight / (rrf_k + l.rank), 0) + coalesce(vector_weight / (rrf_k + s.rank), 0)
                   -- Each list's scores min-max normalised to [0, 1] (all 1 if they are equal); a chunk absent from
                   -- a list gets 0 there, the least of what made the list.
                   ELSE (text_weight * coalesce(memora.min_max(l.score, l.low, l.high), 0)
                         + vector_weight * coalesce(memora.min_max(s.similarity, s.low, s.high), 0))
                        / (text_weight + vector_weight)
               END AS score,
               l.rank AS text_rank, l.score AS text_score, s.rank AS vector_rank, s.similarity, s.distance
        FROM lexical l FULL JOIN semantic s ON s.chunk_id = l.chunk_id
        ORDER BY 2 DESC, 1
        LIMIT k
    )
    SELECT f.chunk_id, d.id, d.external_id, ch.ordinal, ch.title, ch.text, d.metadata, ch.metadata,
           ch.char_start, ch.char_end, f.score, f.text_rank, f.text_score, f.vector_rank, f.similarity, f.distance
    FROM fused f
    JOIN memora.chunk ch ON ch.collection_id = c.id AND ch.id = f.chunk_id
    JOIN memora.document d ON d.collection_id = c.id AND d.id = ch.document_id
    ORDER BY f.score DESC, f.chunk_id;
END
$$;

COMMENT ON FUNCTION memora.search_hybrid_v1(text, text, vector, integer, jsonb, text, integer, double precision,
                                            double precision, integer, integer, boolean) IS
    'Hybrid search: BM25 and nearest-neighbour candidates (CANDIDATES each, default 4 * k), fused by FUSION: '
    'convex (default): (text_weight * min-max normalised BM25 + vector_weight * min-max normalised similarity) '
    '/ (text_weight + vector_weight); rrf: text_weight / (rrf_k + text rank) + vector_weight / (rrf_k + vector rank).';


CREATE OR REPLACE FUNCTION memora.search_text_v1(
    collection text,
    query text,
    k integer,
    filter jsonb DEFAULT NULL
)
RETURNS SETOF memora.search_hit
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT chunk_id, document_id, external_id, ordinal, title, text, metadata, chunk_metadata, char_start, char_end,
           text_score, text_rank, text_score, NULL::integer, NULL::double precision, NULL::double precision
    FROM memora.search_hybrid_v1(collection, query, NULL, k, filter, candidates => k, vector_weight => 0)
$$;

COMMENT ON FUNCTION memora.search_text_v1(text, text, integer, jsonb) IS
    'BM25 search: the K chunks that score best for any of the query''s terms; score is the BM25 score.';


CREATE OR REPLACE FUNCTION memora.search_vector_v1(
    collection text,
    query_embedding vector,
    k integer,
    filter jsonb DEFAULT NULL,
    ef_search integer DEFAULT NULL,
    exact boolean DEFAULT false
)
RETURNS SETOF memora.search_hit
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    c memora.collection := memora.search_collection(collection);
BEGIN
    PERFORM memora.check_search_arguments(c, k, ef_search, query_embedding);
    IF query_embedding IS NULL THEN
        PERFORM memora.argument_error('query_embedding', 'is required');
    END IF;
    -- What search_hybrid_v1 returns with text_weight 0, without its fusion: 0.17 ms less a search (of ~2).
    RETURN QUERY
    SELECT v.chunk_id, d.id, d.external_id, ch.ordinal, ch.title, ch.text, d.metadata, ch.metadata,
           ch.char_start, ch.char_end, memora.vector_similarity(c.metric, v.distance), NULL::integer,
           NULL::double precision, v.rank, memora.vector_similarity(c.metric, v.distance), v.distance
    FROM (SELECT * FROM memora.vector_candidates(c.id, query_embedding, k, filter, ef_search, exact) LIMIT k) v
    JOIN memora.chunk ch ON ch.collection_id = c.id AND ch.id = v.chunk_id
    JOIN memora.document d ON d.collection_id = c.id AND d.id = ch.document_id
    ORDER BY v.rank;
END
$$;

COMMENT ON FUNCTION memora.search_vector_v1(text, vector, integer, jsonb, integer, boolean) IS
    'Nearest-neighbour search over the HNSW index (EF_SEARCH per query; EXACT scans every vector); '
    'a filter keeps the index scan going until K rows pass it.';


-- The names people type: the current version of each function.

CREATE OR REPLACE FUNCTION memora.search_text(collection text, query text, k integer, filter jsonb DEFAULT NULL)
RETURNS SETOF memora.search_hit
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM memora.search_text_v1(collection, query, k, filter) $$;

CREATE OR REPLACE FUNCTION memora.search_vector(
    collection text,
    query_embedding vector,
    k integer,
    filter jsonb DEFAULT NULL,
    ef_search integer DEFAULT NULL,
    exact boolean DEFAULT false
)
RETURNS SETOF memora.search_hit
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM memora.search_vector_v1(collection, query_embedding, k, filter, ef_search, exact) $$;

CREATE OR REPLACE FUNCTION memora.search_hybrid(
    collection text,
    query text,
    query_embedding vector,
    k integer,
    filter jsonb DEFAULT NULL,
    fusion text DEFAULT 'convex',
    rrf_k integer DEFAULT 60,
    text_weight double precision DEFAULT 1,
    vector_weight double precision DEFAULT 1,
    candidates integer DEFAULT NULL,
    ef_search integer DEFAULT NULL
)
RETURNS SETOF memora.search_hit
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM memora.search_hybrid_v1(collection, query, query_embedding, k, filter, fusion, rrf_k, text_weight,
                                          vector_weight, candidates, ef_search)
$$;

COMMENT ON FUNCTION memora.search_text(text, text, integer, jsonb) IS 'Current version of search_text (_v1).';
COMMENT ON FUNCTION memora.search_vector(text, vector, integer, jsonb, integer, boolean) IS
    'Current version of search_vector (_v1).';
COMMENT ON FUNCTION memora.search_hybrid(text, text, vector, integer, jsonb, text, integer, double precision,
                                         double precision, integer, integer) IS
    'Current version of search_hybrid (_v1).';
