-- requires: 0003 (memora.snapshot, memora.snapshot_example, the seq/format/text_hash of memora.example)
--
-- Training data: the rules every labeled example follows, whoever writes it (the REST API, `memora import`, psql).
--
-- An example's content never changes once stored (a changed example is a new one), so a snapshot can hold
-- (example id, content hash, split) and read the same rows forever. Its split is a function of its normalised
-- text, the dataset's seed and ratios; its seq numbers it densely within the dataset for paging and shuffling.
--
-- The functions an import runs once per example (text_hash, example_hash, split_of and the insert trigger) have no
-- SET search_path, unlike the rest of Memora's SQL: a SET clause costs a configuration save and restore per call
-- and stops PostgreSQL from inlining a SQL function, which together made an import ~10x slower. They are pure,
-- name every object with its schema, and use only built-ins, which pg_catalog (searched first) provides.


CREATE OR REPLACE FUNCTION memora.example_text(format text, input jsonb, output jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- Chat: what the user and the assistant say, without the system prompt that most conversations share.
    -- Everything else: every string in input and output, in jsonb's (stable) order.
    SELECT CASE WHEN format = 'chat' THEN (
        SELECT string_agg(coalesce(m ->> 'content', m -> 'content' #>> '{}', ''), E'\n')
        FROM jsonb_array_elements(input -> 'messages') AS m
        WHERE m ->> 'role' IS DISTINCT FROM 'system'
    ) ELSE (
        SELECT string_agg(v #>> '{}', E'\n')
        FROM jsonb_path_query(jsonb_build_array(input, output), 'strict $.**') AS v
        WHERE jsonb_typeof(v) = 'string'
    ) END
$$;

COMMENT ON FUNCTION memora.example_text(text, jsonb, jsonb) IS
    'The text of an example: what near-duplicate search embeds and, normalised, what text_hash hashes.';


CREATE OR REPLACE FUNCTION memora.text_hash(format text, input jsonb, output jsonb, label text, labels text[])
RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    -- The strings memora.example_text joins, as the text of one JSON array, with ASCII letters lower-cased
    -- (COLLATE "C": the same on every server, and what app/training/formats/hashing.py does), ASCII white space
    -- (raw, or escaped as \n \t \r) collapsed to one space and none left at either end of a string: case and
    -- spacing do not make two examples different; the label does. Plain string functions, no regular
    -- expression: this runs once per imported example (~6 us against ~16 us with regexp_replace).
    SELECT pg_catalog.sha256(pg_catalog.convert_to(
        pg_catalog.replace(pg_catalog.replace(
            pg_catalog.array_to_string(pg_catalog.array_remove(pg_catalog.string_to_array(
                pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
                    pg_catalog.lower((CASE WHEN format = 'chat'
                        THEN pg_catalog.jsonb_path_query_array(
                            input, 'lax $.messages[*] ? (@.role != "system").content')
                        ELSE pg_catalog.jsonb_path_query_array(
                            pg_catalog.jsonb_build_array(input, output), 'strict $.** ? (@.type() == "string")')
                    END)::text COLLATE "C"),
                    '\n', ' '), '\t', ' '), '\r', ' '),
                ' '), ''), ' '),
            '" ', '"'), ' "', '"')
        || E'\x1f' || coalesce(label, '') || E'\x1f' || coalesce(pg_catalog.array_to_string(labels, E'\x1e'), ''),
        'UTF8'
    ))
$$;

COMMENT ON FUNCTION memora.text_hash(text, jsonb, jsonb, text, text[]) IS
    'SHA-256 of an example''s normalised text and labels: exact duplicates share it, and it keys the split.';


CREATE OR REPLACE FUNCTION memora.example_hash(
    input jsonb, output jsonb, label text, labels text[],
    input_ids integer[], attention_mask integer[], token_type_ids integer[],
    start_positions integer[], end_positions integer[]
)
RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    -- jsonb's text form is canonical (keys sorted, one spelling per number), so equal content hashes equally.
    SELECT pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.jsonb_build_array(
        input, output, label, labels, input_ids, attention_mask, token_type_ids, start_positions, end_positions
    )::text, 'UTF8'))
$$;

COMMENT ON FUNCTION memora.example_hash(jsonb, jsonb, text, text[], integer[], integer[], integer[], integer[],
    integer[]) IS 'SHA-256 of all of an example''s content: the same example imported twice is stored once.';


CREATE OR REPLACE FUNCTION memora.split_of(key bytea, seed integer, ratios jsonb)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    -- A point u in [0, 1) from 56 bits of SHA-256(seed || key), placed on the ratios laid end to end in the
    -- order train, validation, test. Ratios are shares of their sum, so {"train": 8, "test": 2} works too.
    u float8 := ('x' || pg_catalog.encode(pg_catalog.substr(pg_catalog.sha256(pg_catalog.int4send(seed) || key), 1, 7),
                 'hex'))::bit(56)::bigint / 72057594037927936.0::float8;
    train float8 := coalesce((ratios ->> 'train')::float8, 0);
    validation float8 := coalesce((ratios ->> 'validation')::float8, 0);
    test float8 := coalesce((ratios ->> 'test')::float8, 0);
    total float8 := train + validation + test;
BEGIN
    RETURN CASE
        WHEN u IS NULL OR total <= 0 THEN NULL
        WHEN u * total < train THEN 'train'
        WHEN u * total < train + validation THEN 'validation'
        WHEN test > 0 THEN 'test'
        WHEN validation > 0 THEN 'validation'
        ELSE 'train'
    END;
END
$$;

COMMENT ON FUNCTION memora.split_of(bytea, integer, jsonb) IS
    'The split (train, validation or test) that KEY falls in under SEED and RATIOS; deterministic.';


CREATE OR REPLACE FUNCTION memora.example_before_insert()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    rule memora.dataset;
    block_name text;
    block text;
    seq_next bigint;
    block_end bigint;
    size bigint := 0;
BEGIN
    -- The app fills every column itself (one statement per batch); this serves rows written from psql.
    IF NEW.content_hash IS NULL THEN
        NEW.content_hash := memora.example_hash(
            NEW.input, NEW.output, NEW.label, NEW.labels, NEW.input_ids, NEW.attention_mask, NEW.token_type_ids,
            NEW.start_positions, NEW.end_positions);
    END IF;
    IF NEW.text_hash IS NULL THEN
        NEW.text_hash := memora.text_hash(NEW.format, NEW.input, NEW.output, NEW.label, NEW.labels);
    END IF;
    IF NEW.seq IS NULL THEN
        -- Numbers are reserved from dataset.next_seq in blocks that double within a transaction (1, 2, 4, ...
        -- 1024), kept as "next:end:size" in a transaction-local setting: an UPDATE of the dataset row per row
        -- would make a bulk INSERT ... SELECT slower with every row. Unused numbers are gaps, which seq allows.
        block_name := 'memora.seq_block_' || NEW.dataset_id;
        block := nullif(current_setting(block_name, true), '');
        IF block IS NOT NULL THEN
            seq_next := split_part(block, ':', 1)::bigint;
            block_end := split_part(block, ':', 2)::bigint;
            size := split_part(block, ':', 3)::bigint;
        END IF;
        IF seq_next IS NULL OR seq_next >= block_end THEN
            size := least(1024, greatest(1, 2 * size));
            UPDATE memora.dataset d SET next_seq = d.next_seq + size
            WHERE d.id = NEW.dataset_id
            RETURNING d.next_seq - size, d.next_seq INTO seq_next, block_end;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'dataset % does not exist', NEW.dataset_id USING ERRCODE = 'foreign_key_violation';
            END IF;
        END IF;
        NEW.seq := seq_next;
        PERFORM set_config(block_name, (seq_next + 1) || ':' || block_end || ':' || size, true);
    END IF;
    IF NEW.split IS NULL THEN
        -- An exact twin of a live example joins its split; anything else gets the split its hash says.
        SELECT * INTO rule FROM memora.dataset d WHERE d.id = NEW.dataset_id;
        NEW.split := coalesce(
            (SELECT t.split FROM memora.example t
             WHERE t.dataset_id = NEW.dataset_id AND t.text_hash = NEW.text_hash AND t.deleted_at IS NULL
             LIMIT 1),
            memora.split_of(NEW.text_hash, rule.split_seed, rule.split_ratios));
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER example_before_insert
    BEFORE INSERT ON memora.example
    FOR EACH ROW EXECUTE FUNCTION memora.example_before_insert();


CREATE OR REPLACE FUNCTION memora.example_immutable()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Split, tombstone, token count, embedding and provenance may change; the content may not.
    IF (NEW.dataset_id, NEW.id, NEW.seq, NEW.format, NEW.input, NEW.output, NEW.label, NEW.labels, NEW.metadata,
        NEW.content_hash, NEW.text_hash, NEW.input_ids, NEW.attention_mask, NEW.token_type_ids,
        NEW.start_positions, NEW.end_positions)
       IS DISTINCT FROM
       (OLD.dataset_id, OLD.id, OLD.seq, OLD.format, OLD.input, OLD.output, OLD.label, OLD.labels, OLD.metadata,
        OLD.content_hash, OLD.text_hash, OLD.input_ids, OLD.attention_mask, OLD.token_type_ids,
        OLD.start_positions, OLD.end_positions) THEN
        RAISE EXCEPTION 'example % of dataset % is immutable: add the changed example as a new one',
            OLD.id, OLD.dataset_id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER example_immutable
    BEFORE UPDATE ON memora.example
    FOR EACH ROW EXECUTE FUNCTION memora.example_immutable();


CREATE OR REPLACE FUNCTION memora.snapshot_frozen()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'snapshots are immutable' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- DELETE: only as part of deleting the snapshot itself (the cascade from memora.snapshot).
    IF EXISTS (SELECT FROM old_rows o JOIN memora.snapshot s ON s.id = o.snapshot_id) THEN
        RAISE EXCEPTION 'snapshots are immutable: delete the snapshot, not its rows'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER snapshot_example_no_update
    BEFORE UPDATE ON memora.snapshot_example
    FOR EACH STATEMENT EXECUTE FUNCTION memora.snapshot_frozen();

CREATE OR REPLACE TRIGGER snapshot_example_no_delete
    AFTER DELETE ON memora.snapshot_example
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memora.snapshot_frozen();


CREATE OR REPLACE FUNCTION memora.create_snapshot(dataset text, name text, description text DEFAULT '')
RETURNS memora.snapshot
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ds memora.dataset;
    snap memora.snapshot;
BEGIN
    -- FOR SHARE: examples being imported into this dataset right now are either all in or all out.
    SELECT * INTO ds FROM memora.dataset d WHERE d.name = create_snapshot.dataset FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dataset % does not exist', dataset USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO memora.snapshot (dataset_id, name, description, examples, split_counts)
    VALUES (ds.id, create_snapshot.name, coalesce(create_snapshot.description, ''), 0, '{}')
    RETURNING * INTO snap;
    INSERT INTO memora.snapshot_example (snapshot_id, seq, dataset_id, example_id, content_hash, split)
    SELECT snap.id, row_number() OVER (ORDER BY e.seq) - 1, e.dataset_id, e.id, e.content_hash, e.split
    FROM memora.example e
    WHERE e.dataset_id = ds.id AND e.deleted_at IS NULL;
    UPDATE memora.snapshot s
    SET examples = c.examples, split_counts = c.split_counts
    FROM (
        SELECT coalesce(sum(n), 0) AS examples, coalesce(jsonb_object_agg(coalesce(split, 'none'), n), '{}') AS split_counts
        FROM (SELECT split, count(*) AS n FROM memora.snapshot_example WHERE snapshot_id = snap.id GROUP BY split) g
    ) c
    WHERE s.id = snap.id
    RETURNING s.* INTO snap;
    RETURN snap;
END
$$;

COMMENT ON FUNCTION memora.create_snapshot(text, text, text) IS
    'Freeze the live examples of DATASET (ids, content hashes, splits) as snapshot NAME; returns the snapshot.';


CREATE OR REPLACE FUNCTION memora.snapshot_diff_v1(dataset text, a text, b text)
RETURNS TABLE (example_id bigint, change text, split_before text, split_after text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ds_id bigint;
    a_id bigint;
    b_id bigint;
BEGIN
    -- What changed from snapshot A to snapshot B of DATASET, one row per example that differs, in example id order.
    -- An example's content never changes (memora.example_immutable), so a row of both snapshots differs only in
    -- its split; the example id alone says whether a row is the same example. A full outer join on it gives the
    -- three kinds at once: only in B (added), only in A (removed), in both with another split (split_changed).
    -- Both snapshots are read whole (a hash join, linear in their sizes), whatever the caller keeps of the rows.
    SELECT d.id INTO ds_id FROM memora.dataset d WHERE d.name = snapshot_diff_v1.dataset;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = format('dataset %L does not exist', dataset),
            DETAIL = 'dataset';
    END IF;
    SELECT s.id INTO a_id FROM memora.snapshot s WHERE s.dataset_id = ds_id AND s.name = snapshot_diff_v1.a;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found',
            MESSAGE = format('dataset %L has no snapshot %L', dataset, a), DETAIL = 'a';
    END IF;
    SELECT s.id INTO b_id FROM memora.snapshot s WHERE s.dataset_id = ds_id AND s.name = snapshot_diff_v1.b;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found',
            MESSAGE = format('dataset %L has no snapshot %L', dataset, b), DETAIL = 'b';
    END IF;
    -- Columns are qualified throughout: the names of the result columns are variables in here.
    RETURN QUERY
    SELECT coalesce(x.example_id, y.example_id),
           CASE WHEN x.example_id IS NULL THEN 'added' WHEN y.example_id IS NULL THEN 'removed'
                ELSE 'split_changed' END,
           x.split,
           y.split
    FROM (SELECT se.example_id, se.split FROM memora.snapshot_example se WHERE se.snapshot_id = a_id) x
    FULL JOIN (SELECT se.example_id, se.split FROM memora.snapshot_example se WHERE se.snapshot_id = b_id) y
      ON y.example_id = x.example_id
    WHERE x.example_id IS NULL OR y.example_id IS NULL OR x.split IS DISTINCT FROM y.split
    ORDER BY 1;
END
$$;

COMMENT ON FUNCTION memora.snapshot_diff_v1(text, text, text) IS
    'What changed from snapshot A to snapshot B of DATASET: (example_id, change added | removed | split_changed, '
    'split_before, split_after), by example id; P0002 (DETAIL dataset, a or b) for a name it does not have.';


CREATE OR REPLACE FUNCTION memora.shuffle_position(i bigint, n bigint, seed bigint)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    half_bits int := greatest(1, (ceil(log(2, greatest(n, 2)::numeric)) + 1)::int / 2);
    mask bigint := (1::bigint << half_bits) - 1;
    x bigint := i;
    l bigint;
    r bigint;
    t bigint;
BEGIN
    -- A pseudo-random permutation of [0, n): a four-round Feistel network on 2 * half_bits bits, walked in
    -- cycles until it lands inside [0, n) (at most 4n domain points, so a few steps on average). Position i of
    -- the shuffled order is memora.shuffle_position(i, n, seed); no table is sorted.
    IF i < 0 OR i >= n THEN
        RAISE EXCEPTION 'position % is outside [0, %)', i, n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        l := x >> half_bits;
        r := x & mask;
        FOR k IN 1..4 LOOP
            t := r;
            r := l # (hashint8extended(r, seed + k) & mask);
            l := t;
        END LOOP;
        x := (l << half_bits) | r;
        EXIT WHEN x < n;
    END LOOP;
    RETURN x;
END
$$;

COMMENT ON FUNCTION memora.shuffle_position(bigint, bigint, bigint) IS
    'The element at position I of a deterministic pseudo-random permutation of [0, N) chosen by SEED.';
