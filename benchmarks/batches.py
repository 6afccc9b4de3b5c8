"""Batches for a training loop: the first batch of an epoch against the last, keyset against OFFSET.

Builds a dataset of --rows classification examples (1% of them deleted, so seq has gaps) and a snapshot of it,
then times the batch a training loop asks for first and the one it asks for last, in each mode the API serves:
live or snapshot, seq order or shuffled (one seed), with and without a split filter. A batch is timed as the API
makes it (app.training.batches.batch: the queries, records and the response model; no HTTP). Beside them, the naive
loop `SELECT ... ORDER BY id LIMIT size OFFSET k`, whose last page reads and throws away every row before it. Also
the cost per position of memora.shuffle_position (one call per position) and memora.shuffle_positions (a run).

    .venv/bin/python benchmarks/batches.py [--rows 1000000] [--size 1000] [--repeats 7] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg
from common import code_version, console, machine, print_facts, print_table, scratch_database, server_facts, write_json
from sqlalchemy.orm import Session

from app.db.engine import make_engine
from app.db.models import Dataset, Snapshot
from app.training.batches import service as batches
from app.training.batches.cursor import Cursor

FILLER = "a plain review of a product that arrived on time and works as described, nothing more to say"

LOAD = """
INSERT INTO memora.example (dataset_id, seq, format, input, label, content_hash, text_hash, split)
SELECT d.id, r.g, 'classification', r.input, r.label,
       memora.example_hash(r.input, NULL, r.label, NULL, NULL, NULL, NULL, NULL, NULL), r.th,
       memora.split_of(r.th, d.split_seed, d.split_ratios)
FROM memora.dataset d,
     LATERAL (
         SELECT g, i AS input, l AS label, memora.text_hash('classification', i, NULL, l, NULL) AS th
         FROM generate_series(%(start)s::bigint, %(stop)s::bigint - 1) g,
              LATERAL (SELECT jsonb_build_object('text', 'review ' || g || ': ' || %(filler)s) AS i,
                              CASE WHEN mod(g, 3) = 0 THEN 'negative' ELSE 'positive' END AS l) x
     ) r
WHERE d.name = 'bench'
"""


def build(url: str, rows: int) -> None:
    """The dataset (seq and hashes filled in the INSERT, as the importer does), 1% deleted, and snapshot v1."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO memora.dataset (name, task) VALUES ('bench', 'classification')")
        step = 200_000
        with console.status("") as status:
            for start in range(0, rows, step):
                status.update(f"loading examples {start:,} / {rows:,}")
                conn.execute(LOAD, {"start": start, "stop": min(start + step, rows), "filler": FILLER})  # type: ignore[arg-type]
            conn.execute("UPDATE memora.dataset SET next_seq = %s WHERE name = 'bench'", (rows,))
            status.update("deleting 1% of the examples")
            conn.execute("DELETE FROM memora.example WHERE mod(seq, 100) = 7")
            status.update("creating snapshot v1")
            conn.execute("SELECT memora.create_snapshot('bench', 'v1')")
            status.update("VACUUM ANALYZE")
            conn.execute("VACUUM ANALYZE memora.example")
            conn.execute("VACUUM ANALYZE memora.snapshot_example")


def last_cursor(db: Session, dataset: Dataset, snapshot: Snapshot | None, split: str | None, seed: int | None,
                size: int) -> str:  # fmt: skip
    """The cursor of the epoch's last full batch: the SIZE-th example counted from the end."""
    n = dataset.next_seq if snapshot is None else snapshot.examples
    conn = db.connection()
    params = {"d": dataset.id, "s": None if snapshot is None else snapshot.id, "split": split, "seed": seed,
              "n": n, "size": size}  # fmt: skip
    split_filter = "AND (%(split)s::text IS NULL OR t.split = %(split)s)"
    if snapshot is None:
        source = f"memora.example t WHERE t.dataset_id = %(d)s AND t.deleted_at IS NULL {split_filter}"
    else:
        source = f"memora.snapshot_example t WHERE t.snapshot_id = %(s)s {split_filter}"
    if seed is None:
        sql = f"SELECT t.seq FROM {source} ORDER BY t.seq DESC OFFSET %(size)s - 1 LIMIT 1"
    else:
        # Far enough back from the end of the permutation to hold SIZE wanted examples.
        sql = (
            f"SELECT p.i FROM memora.shuffle_positions(greatest(%(n)s - 20 * %(size)s, 0), 20 * %(size)s, %(n)s, "
            f"%(seed)s) p JOIN LATERAL (SELECT 1 FROM {source} AND t.seq = p.x) hit ON true "
            f"ORDER BY p.i DESC OFFSET %(size)s - 1 LIMIT 1"
        )
    position = conn.exec_driver_sql(sql, params).scalar_one()
    return Cursor(dataset.id, None if snapshot is None else snapshot.id, split, seed, n, position).encode()


def timed(function: Any, repeats: int) -> tuple[float, Any]:
    """Median milliseconds of REPEATS calls (after one warm-up), and the last result."""
    result = function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


MODES = [
    ("live, seq order", None, None, None),
    ("live, seq order, split=train", None, "train", None),
    ("live, shuffled", None, None, 42),
    ("live, shuffled, split=test", None, "test", 42),
    ("snapshot, seq order", "v1", None, None),
    ("snapshot, shuffled", "v1", None, 42),
    ("snapshot, shuffled, split=train", "v1", "train", 42),
]


def measure_mode(db: Session, mode: tuple[str, str | None, str | None, int | None], size: int, repeats: int) -> Any:
    """First and last batch of one mode, as app.training.batches.batch makes them."""
    label, snapshot_name, split, seed = mode
    dataset = db.query(Dataset).filter_by(name="bench").one()
    snapshot = None if snapshot_name is None else db.query(Snapshot).filter_by(name=snapshot_name).one()

    def one(cursor: str | None) -> batches.Batch:
        return batches.batch(db, dataset, size=size, cursor=cursor, split=split, snapshot=snapshot, seed=seed,
                             fields=batches.DEFAULT_FIELDS)  # fmt: skip

    end = last_cursor(db, dataset, snapshot, split, seed, size)
    first_ms, first = timed(lambda: one(None), repeats)
    last_ms, last = timed(lambda: one(end), repeats)
    assert len(first.items) == size, label
    assert len(last.items) == size, label
    assert last.next_cursor is None, label
    return {"mode": label, "first_ms": first_ms, "last_ms": last_ms, "ratio": last_ms / first_ms}


def measure_sql(db: Session, size: int, repeats: int) -> list[dict[str, Any]]:
    """The naive loop (ORDER BY id LIMIT size OFFSET k) against a keyset page on seq: same rows, SQL only."""
    conn = db.connection()
    dataset_id = conn.exec_driver_sql("SELECT id FROM memora.dataset WHERE name = 'bench'").scalar_one()
    live = "FROM memora.example WHERE dataset_id = %(d)s AND deleted_at IS NULL"
    columns = "SELECT id, split, format, input, output, label, labels, metadata"
    total = conn.exec_driver_sql(f"SELECT count(*) {live}", {"d": dataset_id}).scalar_one()
    last_seq = conn.exec_driver_sql(
        f"SELECT seq {live} ORDER BY seq DESC OFFSET %(k)s LIMIT 1", {"d": dataset_id, "k": size - 1}
    ).scalar_one()
    statements = {
        "OFFSET (naive loop), SQL only": (f"{columns} {live} ORDER BY id LIMIT %(size)s OFFSET %(k)s", 0, total - size),
        "keyset on seq, SQL only": (f"{columns} {live} AND seq >= %(k)s ORDER BY seq LIMIT %(size)s", 0, last_seq),
    }
    out = []
    for label, (sql, first_k, last_k) in statements.items():

        def page(k: int, sql: str = sql) -> Any:
            return conn.exec_driver_sql(sql, {"d": dataset_id, "size": size, "k": k}).all()

        first_ms, _ = timed(lambda k=first_k: page(k), repeats)
        last_ms, rows = timed(lambda k=last_k: page(k), repeats)
        assert len(rows) == size, label
        out.append({"mode": label, "first_ms": first_ms, "last_ms": last_ms, "ratio": last_ms / first_ms})
    return out


def measure_batches(url: str, size: int, repeats: int) -> list[dict[str, Any]]:
    from app.config import Settings

    engine = make_engine(Settings(database_url=url), "bench")
    try:
        with Session(engine) as db:
            results = [measure_mode(db, mode, size, repeats) for mode in MODES]
            return results + measure_sql(db, size, repeats)
    finally:
        engine.dispose()


def measure_shuffle(url: str, n: int, repeats: int) -> list[dict[str, Any]]:
    """Microseconds per position: memora.shuffle_position called per position against memora.shuffle_positions."""
    out = []
    with psycopg.connect(url) as conn:
        for count in (1_000, 2_000, 10_000):
            one_ms, _ = timed(lambda count=count: conn.execute(
                "SELECT sum(memora.shuffle_position(g, %s, 42)) FROM generate_series(0, %s - 1) g", (n, count)
            ).fetchone(), repeats)  # fmt: skip
            run_ms, _ = timed(lambda count=count: conn.execute(
                "SELECT sum(x) FROM memora.shuffle_positions(0, %s, %s, 42)", (count, n)
            ).fetchone(), repeats)  # fmt: skip
            out.append({"positions": count, "n": n, "shuffle_position_ms": one_ms, "shuffle_positions_ms": run_ms,
                        "speedup": one_ms / run_ms})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="examples in the dataset")
    parser.add_argument("--size", type=int, default=1_000, help="examples per batch")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per figure (the median is shown)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()

    started = time.perf_counter()
    with scratch_database("memora_bench_batches") as db:
        facts = {**machine(), **code_version(), **server_facts(db.url), "server": db.server, "rows": args.rows,
                 "batch_size": args.size}  # fmt: skip
        print_facts("Machine and server", facts)
        load_start = time.perf_counter()
        build(db.url, args.rows)
        load_seconds = time.perf_counter() - load_start
        console.print(f"built {args.rows:,} examples and a snapshot in {load_seconds:.0f} s")
        results = measure_batches(db.url, args.size, args.repeats)
        shuffle = measure_shuffle(db.url, args.rows, args.repeats)
    print_table(
        f"Batches of {args.size:,} from {args.rows:,} examples: first vs last batch of an epoch (median ms)",
        ["mode", "first ms", "last ms", "last/first"],
        [[r["mode"], r["first_ms"], r["last_ms"], r["ratio"]] for r in results],
    )
    print_table(
        f"Shuffle permutation for N = {args.rows:,} (median ms for a run of positions)",
        ["positions", "shuffle_position x count", "shuffle_positions", "speedup"],
        [[r["positions"], r["shuffle_position_ms"], r["shuffle_positions_ms"], r["speedup"]] for r in shuffle],
    )
    console.print(f"wall time {time.perf_counter() - started:.0f} s")
    write_json(args.json, {"machine": facts, "load_seconds": load_seconds, "batches": results, "shuffle": shuffle})


if __name__ == "__main__":
    main()
