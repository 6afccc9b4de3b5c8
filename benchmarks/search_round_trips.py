"""Round trips to PostgreSQL per `POST /v1/collections/{name}/search`: a count, not a timing, so a busy machine
does not move it.

The API runs in process (TestClient) on a scratch database with libpq's trace on each of its connections; a round
trip is a frontend Query or Sync message. A collection of 20 small documents (hashing model, vectors given), each
request sent 6 times first (past psycopg's prepare threshold, the model of the collection known), then counted over 5.
`--baseline DIR` counts another checkout the same way (its app/ imported from DIR, in a subprocess).

    .venv/bin/python benchmarks/search_round_trips.py
    git archive 167e286 | tar -x -C /tmp/before
    .venv/bin/python benchmarks/search_round_trips.py --baseline /tmp/before
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BODIES: dict[str, dict[str, Any]] = {
    "text": {"query": "aardvark termites", "mode": "text"},
    "hybrid": {"query": "aardvark termites"},
    "hybrid + highlights": {"query": "aardvark termites", "include": ["text", "highlights"]},
}
COUNTED = 5


def count() -> dict[str, float]:
    """Round trips per request of each body, for the app/ of the working directory."""
    sys.path.insert(0, os.getcwd())
    from common import scratch_database
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from app.api.main import create_app
    from app.db.engine import make_engine

    counts: dict[str, float] = {}
    with tempfile.TemporaryFile("w+") as trace, scratch_database("memora_bench_round_trips") as db:
        engine = make_engine(db.settings, "api")

        @event.listens_for(engine, "connect")
        def _trace(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.pgconn.trace(trace.fileno())

        app = create_app(db.settings, engine=engine)
        with TestClient(app, base_url="http://localhost") as api:
            created = api.post("/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 8})
            assert created.status_code == 201, created.text
            texts = [f"aardvark number {i} eats termites at night" for i in range(20)]
            documents = [{"external_id": str(i), "title": "t", "content": text,
                          "chunks": [{"text": text, "embedding": [1.0 + i] + [0.5] * 7}]}
                         for i, text in enumerate(texts)]  # fmt: skip
            stored = api.post("/v1/collections/kb/documents", json=documents)
            assert stored.status_code in (201, 202), stored.text
            for name, body in BODIES.items():
                for _ in range(6):
                    answer = api.post("/v1/collections/kb/search", json=body)
                    assert len(answer.json()["results"]) == 10, answer.text
                trace.flush()
                start = trace.seek(0, os.SEEK_END)
                for _ in range(COUNTED):
                    api.post("/v1/collections/kb/search", json=body).raise_for_status()
                trace.flush()
                trace.seek(start)
                kinds = collections.Counter(
                    line.split("\t")[3]
                    for line in trace.read().splitlines()
                    if line.count("\t") >= 3 and "\tF\t" in line
                )
                counts[name] = (kinds["Query"] + kinds["Sync"]) / COUNTED
        engine.dispose()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="another checkout to count the same way")
    parser.add_argument("--count", action="store_true", help=argparse.SUPPRESS)  # the child: print JSON
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.count:
        print(json.dumps(count()))
        return
    from common import code_version, console, write_json

    checkouts = {"this": Path(__file__).resolve().parent.parent}
    if args.baseline is not None:
        checkouts["baseline"] = args.baseline.resolve()
    results = {}
    for label, checkout in checkouts.items():
        out = subprocess.run([sys.executable, __file__, "--count"], cwd=checkout, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        results[label] = json.loads(out.stdout.strip().splitlines()[-1])
        console.print(f"{label} ({checkout}): {results[label]}")
    write_json(args.json, {"benchmark": "search_round_trips", **code_version(), "baseline": str(args.baseline),
                           "round_trips_per_request": results})  # fmt: skip


if __name__ == "__main__":
    main()
