-- requires: 0003 (the training data whose batches it shuffles)
--
-- Batches for a training loop: many positions of a shuffle at once.
--
-- memora.shuffle_position (009-training.sql) answers one position per call in PL/pgSQL, ~9 µs each: 9 ms of a 1,000-example
-- batch. This computes the same permutation for a run of positions in one SQL statement, ~1 µs a position. (The
-- single-position function keeps its own PL/pgSQL loop: calling this one per position costs ~170 µs a call.)


CREATE OR REPLACE FUNCTION memora.shuffle_positions(start bigint, count bigint, n bigint, seed bigint)
RETURNS TABLE (i bigint, x bigint)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- A four-round Feistel network on 2 * h bits, the smallest even width that holds n. A point that lands outside
    -- [0, n) takes another pass (cycle walking); only those rows recurse, a few passes at most on average. The
    -- first row of a position is the position itself, not yet permuted.
    WITH RECURSIVE
    domain AS MATERIALIZED (
        SELECT h, (1::bigint << h) - 1 AS mask
        FROM (SELECT greatest(1, (ceil(log(2, greatest(n, 2)::numeric)) + 1)::int / 2) AS h) b
    ),
    walk (pos, val, permuted) AS (
        SELECT g, g, false FROM generate_series(greatest(start, 0), least(start + count, n) - 1) g
        UNION ALL
        SELECT w.pos, f.y, true
        FROM walk w
        CROSS JOIN domain d
        CROSS JOIN LATERAL (SELECT w.val >> d.h AS l0, w.val & d.mask AS r0) a
        CROSS JOIN LATERAL (SELECT a.l0 # (hashint8extended(a.r0, seed + 1) & d.mask) AS r1) b
        CROSS JOIN LATERAL (SELECT a.r0 # (hashint8extended(b.r1, seed + 2) & d.mask) AS r2) c
        CROSS JOIN LATERAL (SELECT b.r1 # (hashint8extended(c.r2, seed + 3) & d.mask) AS r3) e
        CROSS JOIN LATERAL (SELECT (e.r3 << d.h) | (c.r2 # (hashint8extended(e.r3, seed + 4) & d.mask)) AS y) f
        WHERE NOT w.permuted OR w.val >= n
    )
    SELECT pos, val FROM walk WHERE permuted AND val < n ORDER BY pos
$$;

COMMENT ON FUNCTION memora.shuffle_positions(bigint, bigint, bigint, bigint) IS
    'Positions START .. START+COUNT-1 (those inside [0, N)) of memora.shuffle_position''s permutation chosen by '
    'SEED, as (i, x) rows in order of i: x = memora.shuffle_position(i, N, SEED).';
