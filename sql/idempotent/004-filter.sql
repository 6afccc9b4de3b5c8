-- requires: 0002 (the search functions that use it arrive with revision 0002)
--
-- The filter language of search: JSON in, a parameterised SQL predicate out.
--
--   {"source": "pubmed"}                            metadata.source is "pubmed" (or an array holding it)
--   {"year": {"$gte": 2015, "$lt": 2020}}           ranges over numbers or strings ($gt $gte $lt $lte)
--   {"lang": {"$in": ["en", "de"]}}                 one of ($nin: none of); {"x": {"$ne": 1}}
--   {"author": {"$exists": true}}
--   {"$and": [...]}, {"$or": [...]}, {"$not": {...}}; several keys in one object are ANDed
--   {"meta.nested.key": 1}                          dotted paths reach into nested objects
--   {"document.external_id": {"$in": ["a", "b"]}}   document fields: external_id, title, source, content_type,
--                                                   created_at, updated_at, version
--   {"chunk.page": 3}                               the chunk's own metadata (page, headings)
--
-- Keys and values never become SQL text: the predicate only refers to $K[i] (a text[] of keys) and $V[i] (a
-- jsonb[] of values), whose parameter numbers the caller chooses. Bad filters raise SQLSTATE 22023 with the
-- path of the offending part (e.g. filter.$and[1].year.$gt) as the error's DETAIL.

CREATE OR REPLACE FUNCTION memora.filter_error(path text, reason text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = path || ': ' || reason, DETAIL = path;
END
$$;


CREATE OR REPLACE FUNCTION memora.filter_sql(
    filter jsonb,
    path text,
    key_param integer,
    value_param integer,
    INOUT keys text[],
    INOUT vals jsonb[],
    OUT predicate text
)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    item record;
    part text;
    parts text[] := '{}';
    i integer;
BEGIN
    IF filter IS NULL OR jsonb_typeof(filter) <> 'object' THEN
        PERFORM memora.filter_error(path, 'expected an object of fields and operators');
    END IF;
    IF cardinality(string_to_array(path, '.')) > 32 THEN
        PERFORM memora.filter_error(path, 'nested too deeply (at most 32 levels)');
    END IF;
    FOR item IN SELECT e.key, e.value FROM jsonb_each(filter) e ORDER BY e.key LOOP
        IF item.key IN ('$and', '$or') THEN
            IF jsonb_typeof(item.value) <> 'array' OR jsonb_array_length(item.value) = 0 THEN
                PERFORM memora.filter_error(path || '.' || item.key, 'expected a non-empty array of filters');
            END IF;
            DECLARE
                branches text[] := '{}';
            BEGIN
                FOR i IN 0 .. jsonb_array_length(item.value) - 1 LOOP
                    SELECT f.keys, f.vals, f.predicate INTO keys, vals, part
                    FROM memora.filter_sql(item.value -> i, format('%s.%s[%s]', path, item.key, i),
                                           key_param, value_param, keys, vals) f;
                    branches := branches || part;
                END LOOP;
                parts := parts || ('(' || array_to_string(branches,
                    CASE item.key WHEN '$and' THEN ' AND ' ELSE ' OR ' END) || ')');
            END;
        ELSIF item.key = '$not' THEN
            SELECT f.keys, f.vals, f.predicate INTO keys, vals, part
            FROM memora.filter_sql(item.value, path || '.$not', key_param, value_param, keys, vals) f;
            parts := parts || ('(NOT coalesce(' || part || ', false))');
        ELSIF left(item.key, 1) = '$' THEN
            PERFORM memora.filter_error(path || '.' || item.key,
                'unknown operator (expected a field name, $and, $or or $not)');
        ELSE
            SELECT f.keys, f.vals, f.predicate INTO keys, vals, part
            FROM memora.filter_field(item.key, item.value, path || '.' || item.key,
                                     key_param, value_param, keys, vals) f;
            parts := parts || part;
        END IF;
    END LOOP;
    predicate := CASE WHEN cardinality(parts) = 0 THEN 'true' ELSE '(' || array_to_string(parts, ' AND ') || ')' END;
END
$$;

COMMENT ON FUNCTION memora.filter_sql(jsonb, text, integer, integer, text[], jsonb[]) IS
    'Compile a search filter into a predicate over c (chunk) and d (document) that reads keys and values from '
    'parameters $key_param[i] and $value_param[i]; returns them with it.';


CREATE OR REPLACE FUNCTION memora.filter_field(
    field text,
    condition jsonb,
    path text,
    key_param integer,
    value_param integer,
    INOUT keys text[],
    INOUT vals jsonb[],
    OUT predicate text
)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    segments text[];
    column_name text;
    column_type text;
    target text;        -- SQL for the field's value: a jsonb expression, or a document column
    container text;     -- for metadata: 'd.metadata' or 'c.metadata'
    ops jsonb;
    op record;
    parts text[] := '{}';
    v text;             -- SQL for the current operand parameter
    operand jsonb;
    n integer;
BEGIN
    IF field = '' OR field LIKE '%..%' OR field LIKE '.%' OR field LIKE '%.' THEN
        PERFORM memora.filter_error(path, 'empty field name or path segment');
    END IF;
    IF field LIKE 'document.%' THEN
        column_name := substr(field, 10);
        column_type := CASE column_name
            WHEN 'external_id' THEN 'text' WHEN 'title' THEN 'text' WHEN 'source' THEN 'text'
            WHEN 'content_type' THEN 'text' WHEN 'created_at' THEN 'timestamptz'
            WHEN 'updated_at' THEN 'timestamptz' WHEN 'version' THEN 'integer'
        END;
        IF column_type IS NULL THEN
            PERFORM memora.filter_error(path, 'unknown document field (expected external_id, title, source, '
                'content_type, created_at, updated_at or version)');
        END IF;
        target := 'd.' || column_name;
    ELSE
        IF field LIKE 'chunk.%' THEN
            container := 'c.metadata';
            segments := string_to_array(substr(field, 7), '.');
        ELSE
            container := 'd.metadata';
            segments := string_to_array(field, '.');
        END IF;
        target := container;
        FOREACH v IN ARRAY segments LOOP
            keys := keys || v;
            target := format('%s -> $%s[%s]', target, key_param, cardinality(keys));
        END LOOP;
        target := '(' || target || ')';
    END IF;

    -- A bare operand means equality.
    ops := CASE
        WHEN jsonb_typeof(condition) = 'object' AND EXISTS (SELECT FROM jsonb_object_keys(condition) k WHERE k LIKE '$%')
        THEN condition
        ELSE jsonb_build_object('$eq', condition)
    END;
    FOR op IN SELECT e.key, e.value FROM jsonb_each(ops) e ORDER BY e.key LOOP
        operand := op.value;
        IF op.key IN ('$gt', '$gte', '$lt', '$lte') THEN
            IF jsonb_typeof(operand) NOT IN ('number', 'string') THEN
                PERFORM memora.filter_error(path || '.' || op.key, 'expected a number or a string');
            END IF;
        ELSIF op.key IN ('$in', '$nin') THEN
            IF jsonb_typeof(operand) <> 'array' THEN
                PERFORM memora.filter_error(path || '.' || op.key, 'expected an array of values');
            END IF;
        ELSIF op.key = '$exists' THEN
            IF jsonb_typeof(operand) <> 'boolean' THEN
                PERFORM memora.filter_error(path || '.' || op.key, 'expected true or false');
            END IF;
        ELSIF op.key NOT IN ('$eq', '$ne') THEN
            PERFORM memora.filter_error(path || '.' || op.key,
                'unknown operator (expected $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin or $exists)');
        END IF;

        IF column_type IS NOT NULL THEN
            -- Document columns: values are checked against the column's type here, not when rows are read.
            FOR n IN 0 .. CASE WHEN jsonb_typeof(operand) = 'array' THEN jsonb_array_length(operand) - 1 ELSE 0 END LOOP
                DECLARE
                    one jsonb := CASE WHEN jsonb_typeof(operand) = 'array' THEN operand -> n ELSE operand END;
                BEGIN
                    IF op.key = '$exists' THEN
                        CONTINUE;
                    ELSIF column_type = 'integer' AND (jsonb_typeof(one) <> 'number' OR one::text LIKE '%.%') THEN
                        PERFORM memora.filter_error(path || '.' || op.key, 'expected an integer');
                    ELSIF column_type <> 'integer' AND jsonb_typeof(one) <> 'string' THEN
                        PERFORM memora.filter_error(path || '.' || op.key, 'expected a string');
                    ELSIF column_type = 'timestamptz' THEN
                        BEGIN
                            PERFORM (one #>> '{}')::timestamptz;
                        EXCEPTION WHEN others THEN
                            PERFORM memora.filter_error(path || '.' || op.key,
                                'expected a timestamp such as "2026-01-31T12:00:00Z"');
                        END;
                    END IF;
                END;
            END LOOP;
            vals := vals || operand;
            v := format('$%s[%s]', value_param, cardinality(vals));
            parts := parts || CASE op.key
                WHEN '$eq' THEN format('%s = (%s #>> ''{}'')::%s', target, v, column_type)
                WHEN '$ne' THEN format('%s IS DISTINCT FROM (%s #>> ''{}'')::%s', target, v, column_type)
                WHEN '$gt' THEN format('%s > (%s #>> ''{}'')::%s', target, v, column_type)
                WHEN '$gte' THEN format('%s >= (%s #>> ''{}'')::%s', target, v, column_type)
                WHEN '$lt' THEN format('%s < (%s #>> ''{}'')::%s', target, v, column_type)
                WHEN '$lte' THEN format('%s <= (%s #>> ''{}'')::%s', target, v, column_type)
                WHEN '$in' THEN format(
                    '%s = ANY (ARRAY(SELECT x::%s FROM jsonb_array_elements_text(%s) x))', target, column_type, v)
                WHEN '$nin' THEN format(
                    'NOT coalesce(%s = ANY (ARRAY(SELECT x::%s FROM jsonb_array_elements_text(%s) x)), false)',
                    target, column_type, v)
                WHEN '$exists' THEN format('((%s IS NOT NULL) = (%s)::boolean)', target, v)
            END;
        ELSE
            vals := vals || operand;
            v := format('$%s[%s]', value_param, cardinality(vals));
            parts := parts || CASE op.key
                -- Equality: the operand itself, or an array that holds it.
                WHEN '$eq' THEN format('memora.filter_eq(%s, %s)', target, v)
                WHEN '$ne' THEN format('NOT coalesce(memora.filter_eq(%s, %s), false)', target, v)
                WHEN '$in' THEN format('memora.filter_in(%s, %s)', target, v)
                WHEN '$nin' THEN format('NOT coalesce(memora.filter_in(%s, %s), false)', target, v)
                WHEN '$exists' THEN format('((%s IS NOT NULL) = (%s)::boolean)', target, v)
                -- Ranges compare numbers with numbers and strings with strings; other types do not match.
                ELSE format('(jsonb_typeof(%1$s) = jsonb_typeof(%2$s) AND %1$s %3$s %2$s)', target, v,
                    CASE op.key WHEN '$gt' THEN '>' WHEN '$gte' THEN '>=' WHEN '$lt' THEN '<' ELSE '<=' END)
            END;
        END IF;
    END LOOP;
    IF cardinality(parts) = 0 THEN
        PERFORM memora.filter_error(path, 'expected a value or at least one operator');
    END IF;
    predicate := '(' || array_to_string(parts, ' AND ') || ')';
END
$$;

COMMENT ON FUNCTION memora.filter_field(text, jsonb, text, integer, integer, text[], jsonb[]) IS
    'Compile the condition on one field of a search filter (see memora.filter_sql).';


CREATE OR REPLACE FUNCTION memora.filter_eq(field jsonb, value jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT field = value OR (jsonb_typeof(field) = 'array' AND jsonb_typeof(value) <> 'array'
                             AND field @> jsonb_build_array(value))
$$;

COMMENT ON FUNCTION memora.filter_eq(jsonb, jsonb) IS
    'Filter equality: FIELD is VALUE, or FIELD is an array holding VALUE.';


CREATE OR REPLACE FUNCTION memora.filter_in(field jsonb, candidates jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT EXISTS (SELECT FROM jsonb_array_elements(candidates) v WHERE memora.filter_eq(field, v))
$$;

COMMENT ON FUNCTION memora.filter_in(jsonb, jsonb) IS 'Filter $in: FIELD equals one of CANDIDATES (memora.filter_eq).';


CREATE OR REPLACE FUNCTION memora.compile_filter(
    filter jsonb,
    key_param integer,
    value_param integer,
    OUT predicate text,
    OUT keys text[],
    OUT vals jsonb[]
)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF filter IS NULL OR filter = 'null'::jsonb THEN
        predicate := 'true';
        keys := '{}';
        vals := '{}';
    ELSE
        SELECT f.predicate, f.keys, f.vals INTO predicate, keys, vals
        FROM memora.filter_sql(filter, 'filter', key_param, value_param, '{}', '{}') f;
    END IF;
END
$$;

COMMENT ON FUNCTION memora.compile_filter(jsonb, integer, integer) IS
    'A search filter (JSON) as a predicate over c (chunk) and d (document) with its parameters: keys at '
    '$key_param[i], values at $value_param[i]. SELECT * FROM memora.compile_filter(''{"year": {"$gte": 2020}}'', 1, 2).';
