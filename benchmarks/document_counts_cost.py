"""What keeping documents by status costs the writes (migration 0011's statement triggers on memora.document): the
statements that ingestion runs, timed with the triggers on and off, the two taking turns each round.

A scratch database (MEMORA_DATABASE_URL's server, else an embedded one) gets a collection; each round inserts a
batch of --batch documents (an upload), moves them pending -> processing (a worker's claim), then processing -> ready
(its finish), each statement in a transaction of its own, once with memora.document's count triggers enabled and once
disabled (ALTER TABLE ... DISABLE TRIGGER, in the same session), in a random order per round. Reports p50 and p95 ms
per statement and side, and the paired difference.

    .venv/bin/python benchmarks/document_counts_cost.py --json benchmarks/results/document_counts_cost.json
    .venv/bin/python benchmarks/document_counts_cost.py --rounds 50          # quick
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg
from common import code_version, machine, print_facts, print_table, progress, scratch_database, server_facts, write_json

TRIGGERS = ("document_count_insert", "document_count_update", "document_count_delete")
STATEMENTS = {
    "insert (upload)": "INSERT INTO memora.document (collection_id, external_id, content) "
    "SELECT %(c)s, id, 'text of document ' || id FROM unnest(%(ids)s::text[]) id",
    "pending -> processing (claim)": "UPDATE memora.document SET status = 'processing' "
    "WHERE collection_id = %(c)s AND external_id = ANY(%(ids)s::text[])",
    "processing -> ready (finish)": "UPDATE memora.document SET status = 'ready' "
    "WHERE collection_id = %(c)s AND external_id = ANY(%(ids)s::text[])",
}


def run_side(conn: psycopg.Connection[Any], collection: int, tag: str, batch: int, on: bool) -> dict[str, float]:
    """One round's statements on one side: their ms each, in a transaction each."""
    action = "ENABLE" if on else "DISABLE"
    for trigger in TRIGGERS:
        conn.execute(f"ALTER TABLE memora.document {action} TRIGGER {trigger}")  # type: ignore[arg-type]
    conn.commit()
    times = {}
    for name, statement in STATEMENTS.items():
        start = time.perf_counter()
        ids = [f"{tag}-{i}" for i in range(batch)]
        conn.execute(statement, {"c": collection, "ids": ids})  # type: ignore[arg-type]
        conn.commit()
        times[name] = (time.perf_counter() - start) * 1000
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--batch", type=int, default=32, help="documents per statement (the worker's default batch)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    payload: dict[str, Any] = {"benchmark": "document_counts_cost", "code": code_version(), "machine": machine(),
                               "parameters": vars(args) | {"json": str(args.json)}}  # fmt: skip
    found: dict[str, dict[str, list[float]]] = {side: {name: [] for name in STATEMENTS} for side in ("on", "off")}
    with scratch_database("counts_cost") as db, progress() as bar, psycopg.connect(db.url) as conn:
        payload["server"] = server_facts(db.url)
        conn.execute("INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions) "
                     "VALUES ('counts', 'hashing', 'hashing', 8)")  # fmt: skip
        collection = conn.execute("SELECT id FROM memora.collection WHERE name = 'counts'").fetchone()[0]  # type: ignore[index]
        conn.commit()
        task = bar.add_task("ingestion's statements, counts on and off, taking turns", total=args.rounds)
        for round_ in range(args.rounds):
            for side in rng.sample(["on", "off"], 2):
                times = run_side(conn, collection, f"{side}{round_}", args.batch, side == "on")
                for name, ms in times.items():
                    found[side][name].append(ms)
            bar.advance(task)
        run_side(conn, collection, "end", 0, True)  # leave the triggers on
    rows = []
    payload["statements"] = {}
    for name in STATEMENTS:
        on, off = found["on"][name][10:], found["off"][name][10:]  # the first rounds warm the caches
        paired = [a - b for a, b in zip(on, off, strict=True)]
        figures = {
            "on_p50_ms": round(statistics.median(on), 3),
            "off_p50_ms": round(statistics.median(off), 3),
            "on_p95_ms": round(sorted(on)[int(0.95 * (len(on) - 1))], 3),
            "off_p95_ms": round(sorted(off)[int(0.95 * (len(off) - 1))], 3),
            "paired_difference_p50_ms": round(statistics.median(paired), 3),
        }
        payload["statements"][name] = figures
        rows.append([name, *figures.values()])
    print_facts("machine", payload["machine"] | payload["code"])
    print_table(f"ingestion's statements on {args.batch} documents (ms)",
                ["statement", "counts on p50", "off p50", "on p95", "off p95", "paired diff p50"], rows)  # fmt: skip
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
