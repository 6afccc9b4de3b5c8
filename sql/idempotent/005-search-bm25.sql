-- requires: 0002 (memora.text_stats, memora.term_stats, collection.bm25_k1 and bm25_b)
--
-- BM25: a query's terms, the tsqueries made of them, and, for a database at a revision before 0008, the k best
-- chunks of a collection read from the chunks' tsvectors (sql/idempotent/013-search-postings.sql replaces it with
-- the postings' from 0008 on).

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
BEGIN
    -- Before revision 0008 there are no postings (a database downgraded below it): every chunk with one of the
    -- query's terms is scored from its tsvector, as 013's postings score it, with no pruning.
    SELECT * INTO STRICT c FROM memora.collection WHERE id = p_collection_id;
    SELECT * INTO s FROM memora.text_stats WHERE collection_id = p_collection_id;
    f := memora.compile_filter(p_filter, 7, 8);
    IF s.chunks IS NULL OR s.chunks <= 0 OR s.total_length <= 0 OR p_limit <= 0 THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        $sql$
        WITH t AS (SELECT t.lexeme, ln(1 + ($2 - t.df + 0.5) / (t.df + 0.5)) * ($3 + 1) AS w
                   FROM memora.term_stats t
                   WHERE t.collection_id = $1 AND t.lexeme = ANY (memora.search_terms($6, $9)))
        SELECT r.chunk_id, r.score, (row_number() OVER (ORDER BY r.score DESC, r.chunk_id))::integer
        FROM (SELECT c.id AS chunk_id,
                     round(sum(t.w * coalesce(cardinality(u.positions), 1)
                               / (coalesce(cardinality(u.positions), 1) + $4 + $5 * length(c.tsv))) * 1e9) / 1e9
                     AS score
              FROM memora.chunk c
              JOIN memora.document d ON d.collection_id = c.collection_id AND d.id = c.document_id
              CROSS JOIN LATERAL unnest(c.tsv) u
              JOIN t ON t.lexeme = u.lexeme
              WHERE c.collection_id = $1 AND c.tsv @@ memora.lexeme_tsquery(ARRAY(SELECT t.lexeme FROM t)) AND %s
              GROUP BY c.id
              ORDER BY 2 DESC, 1
              LIMIT $10) r
        $sql$, f.predicate)
    USING p_collection_id, s.chunks::double precision, c.bm25_k1::double precision,
          (c.bm25_k1 * (1 - c.bm25_b))::double precision,
          (c.bm25_k1 * c.bm25_b * s.chunks / s.total_length)::double precision, c.language, f.keys, f.vals,
          p_query, p_limit;
END
$$;

COMMENT ON FUNCTION memora.bm25_candidates(bigint, text, integer, jsonb) IS
    'The P_LIMIT best chunks of a collection by BM25 (k1, b of the collection) for a query, with a filter; scores '
    'rounded to 1e-9, ties by chunk id.';
