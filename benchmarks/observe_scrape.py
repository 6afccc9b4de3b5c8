"""What an operator's look costs: GET /metrics (one grouped scan of memora.document on a connection of its own)
and GET /v1/status, against a queue of --documents documents spread over 10 collections and every status.

    .venv/bin/python benchmarks/observe_scrape.py [--documents 100000 1000000] [--runs 20] [--json PATH]

Figures are medians and maxima of --runs requests through the app in this process (fastapi's TestClient), after
one warm-up request; other work on the machine moves them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg
from common import code_version, console, machine, print_facts, print_table, scratch_database, write_json
from fastapi.testclient import TestClient

from app.api.main import create_app

COLLECTIONS = """
    INSERT INTO memora.collection (name, embedding_provider, embedding_model, dimensions)
    SELECT 'c' || n, 'hashing', 'hashing', 16 FROM generate_series(1, 10) n;
"""
FILL = """
    TRUNCATE memora.document CASCADE;
    INSERT INTO memora.document (collection_id, external_id, content, status, error, available_at, leased_by)
    SELECT c.id, 'd' || n, 'document ' || n,
           (ARRAY['ready', 'ready', 'ready', 'ready', 'ready', 'ready', 'pending', 'processing', 'failed'])[1 + n % 9],
           CASE WHEN n % 9 = 8 THEN 'HTTP 401: bad key' END,
           now() + CASE WHEN n % 18 = 7 THEN interval '-1 minute' ELSE interval '5 minutes' END,
           CASE WHEN n % 9 = 7 THEN 'host:1:abcdef' END
    FROM generate_series(1, %(count)s) n
    JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM memora.collection) c ON c.k = n % 10;
    ANALYZE memora.document;
"""


def timed(client: TestClient, path: str, runs: int) -> tuple[float, float]:
    """Median and maximum milliseconds of RUNS requests to PATH, after one that is not counted."""
    assert client.get(path).status_code == 200
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    rows: list[list[Any]] = []
    with scratch_database("observe") as scratch:
        print_facts("Observability: the cost of a look", {**machine(), "server": scratch.server})
        with psycopg.connect(scratch.url) as conn:
            conn.execute(COLLECTIONS)
        for count in sorted(args.documents):
            with console.status(f"filling the queue to {count:,} documents"), psycopg.connect(scratch.url) as conn:
                conn.execute(FILL.replace("%(count)s", str(count)))
            with TestClient(create_app(scratch.settings), base_url="http://localhost") as client:
                metrics = timed(client, "/metrics", args.runs)
                status = timed(client, "/v1/status", args.runs)
            rows.append([count, *metrics, *status])
    columns = ["documents", "/metrics p50 ms", "/metrics max ms", "/v1/status p50 ms", "/v1/status max ms"]
    print_table("GET /metrics and GET /v1/status", columns, rows)
    write_json(args.json, {"machine": machine(), "code": code_version(), "columns": columns, "rows": rows})


if __name__ == "__main__":
    main()
