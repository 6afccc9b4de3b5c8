"""Read replicas on one machine: an embedded primary and a streaming replica of it (`memora db replica create`'s
code), both on loopback, the REST API in process with the replica as MEMORA_READ_DATABASE_URLS.

  1. Same results: each query searched through the replica and through an API without replicas, taking turns
     (NFCorpus documents with vectors by the local model; questions of 10-20 words and keywords).
  2. Lag under a steady ingest: documents written at a fixed rate; for each write, the time from its response to
     the replica having replayed its position (Memora-LSN), watched every 2 ms.
  3. The replica stopped under searches: errors, which server answered, and how long the requests took around the
     stop (the fallback time), then back to the replica after it starts again.
  4. Read-your-writes: write-then-read pairs, each read passing the write's position (Memora-Read-After); and as many
     without it, to show what an eventual read misses.

NFCorpus is read from ../shared/data/nfcorpus when present, else the small fixture in tests/fixtures/beir.

    .venv/bin/python benchmarks/replicas.py --json benchmarks/results/replicas.json
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from common import code_version, machine, print_facts, print_table, progress, server_facts
from common import write_json as write_figures
from console_speed import COLLECTION, store_corpus
from fastapi.testclient import TestClient
from load import FIXTURES, NFCORPUS, make_queries, read_jsonl
from psycopg import sql

from app.api.main import create_app
from app.api.reads import READ_AFTER
from app.config import Settings
from app.db import migrate
from app.db.embedded import EmbeddedPostgres
from app.db.embedded_replica import EmbeddedReplica
from app.db.replicas import parse_lsn

SEARCH = f"/v1/collections/{COLLECTION}/search"


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50": round(at(0.5), 2), "p95": round(at(0.95), 2), "max": round(ordered[-1], 2)}


def same_results(replicated: TestClient, primary: TestClient, queries: list[str], bar: Any) -> dict[str, Any]:
    """Each query in each mode through both, in turns; a result is the same when ids, order and scores are."""
    task = bar.add_task("same results: replica and primary, taking turns", total=len(queries) * 3)
    compared = identical = on_replica = 0
    ms: dict[str, list[float]] = {"replica": [], "primary": []}
    for i, query in enumerate(queries):
        for mode in ("hybrid", "text", "vector"):
            body = {"query": query, "mode": mode, "k": 10}
            answers = {}
            for who in ("replica", "primary") if i % 2 else ("primary", "replica"):
                client = replicated if who == "replica" else primary
                started = time.perf_counter()
                response = client.post(SEARCH, json=body)
                ms[who].append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                if who == "replica":
                    on_replica += response.headers.get("memora-served-by", "").startswith("replica ")
                answers[who] = [(r["external_id"], r["score"]) for r in response.json()["results"]]
            compared += 1
            identical += answers["replica"] == answers["primary"]
            bar.advance(task)
    bar.remove_task(task)
    return {
        "searches": compared,
        "identical": identical,
        "served_by_replica": on_replica,
        "client_ms_p50": {who: round(statistics.median(values), 2) for who, values in ms.items()},
    }


def lag_under_ingest(
    client: TestClient, replica_url: str, seconds: float, per_second: float, bar: Any
) -> dict[str, Any]:
    """Write a document every 1/PER_SECOND s for SECONDS; watch the replica's replay position every 2 ms."""
    replayed: list[tuple[float, int]] = []
    stop = threading.Event()

    def watch() -> None:
        with psycopg.connect(replica_url, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn").fetchone()
                replayed.append((time.perf_counter(), int(row[0]) if row else 0))
                time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    writes: list[tuple[float, int]] = []
    task = bar.add_task(f"lag: a document every {1000 / per_second:.0f} ms", total=int(seconds * per_second))
    started = time.perf_counter()
    for n in range(int(seconds * per_second)):
        time.sleep(max(0.0, started + n / per_second - time.perf_counter()))
        doc = {"external_id": f"steady-{n}", "content": f"steady ingest document {n} about aardvarks"}
        response = client.post(f"/v1/collections/{COLLECTION}/documents", json=[doc])
        response.raise_for_status()
        writes.append((time.perf_counter(), parse_lsn(response.headers["memora-lsn"])))
        bar.advance(task)
    time.sleep(1.0)
    stop.set()
    watcher.join()
    bar.remove_task(task)
    lags = []
    for written_at, position in writes:
        seen = next((at for at, lsn in replayed if lsn >= position and at >= written_at), None)
        lags.append(0.0 if seen is None and replayed[-1][1] >= position else ((seen or written_at) - written_at) * 1000)
    return {
        "writes": len(writes),
        "per_second": per_second,
        "lag_ms": percentiles(lags),
        "watch_samples": len(replayed),
    }


def stop_under_searches(client: TestClient, replica: EmbeddedReplica, queries: list[str], bar: Any) -> dict[str, Any]:
    """Searches back to back; the replica stopped after 3 s, started after 6 s; until the replica serves again."""
    records: list[tuple[float, float, int, str]] = []  # (start, ms, status, served by)
    done = threading.Event()

    def search() -> None:
        n = 0
        while not done.is_set():
            started = time.perf_counter()
            response = client.post(SEARCH, json={"query": queries[n % len(queries)], "k": 10})
            ms = (time.perf_counter() - started) * 1000
            records.append((started, ms, response.status_code, response.headers.get("memora-served-by", "?")[:7]))
            n += 1

    task = bar.add_task("the replica stopped and started under searches", total=None)
    reader = threading.Thread(target=search)
    reader.start()
    time.sleep(3)
    stop_at = time.perf_counter()
    replica.stop()
    stopped_at = time.perf_counter()
    time.sleep(3)
    start_at = time.perf_counter()
    replica.ensure_running()
    started_at = time.perf_counter()
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and not (
        records and records[-1][3] == "replica" and records[-1][0] > started_at
    ):
        time.sleep(0.05)
    done.set()
    reader.join()
    bar.remove_task(task)
    around = [ms for at, ms, _, _ in records if stop_at - 0.5 <= at <= stopped_at + 0.5]
    before = [ms for at, ms, _, _ in records if at < stop_at]
    first_primary = next((at for at, _, _, who in records if at >= stop_at and who == "primary"), None)
    back = next((at for at, _, _, who in records if at >= started_at and who == "replica"), None)
    return {
        "searches": len(records),
        "errors": sum(status != 200 for _, _, status, _ in records),
        "served_by": {who: sum(w == who for *_, w in records) for who in ("replica", "primary")},
        "stop_seconds": round(stopped_at - stop_at, 3),
        "search_ms_before_p50": round(statistics.median(before), 2) if before else None,
        "search_ms_around_stop_max": round(max(around), 2) if around else None,
        "first_primary_answer_after_stop_s": None if first_primary is None else round(first_primary - stop_at, 3),
        "start_seconds": round(started_at - start_at, 3),
        "back_on_replica_after_start_s": None if back is None else round(back - started_at, 3),
    }


def read_your_writes(client: TestClient, pairs: int, bar: Any) -> dict[str, Any]:
    """PAIRS write-then-read pairs with the write's position, then as many without it."""
    outcome: dict[str, Any] = {}
    for consistent in (True, False):
        label = "after" if consistent else "eventual"
        task = bar.add_task(f"read-your-writes: {pairs} pairs, {label}", total=pairs)
        seen = 0
        served: dict[str, int] = {}
        for n in range(pairs):
            external_id = f"ryw-{label}-{n}"
            written = client.post(f"/v1/collections/{COLLECTION}/documents", json=[{"external_id": external_id,
                                  "content": f"written then read {n}"}])  # fmt: skip
            written.raise_for_status()
            headers = {READ_AFTER: written.headers["memora-lsn"]} if consistent else {}
            read = client.get(f"/v1/collections/{COLLECTION}/documents/{external_id}", headers=headers)
            seen += read.status_code == 200
            who = read.headers.get("memora-served-by", "?")[:7]
            served[who] = served.get(who, 0) + 1
            bar.advance(task)
        bar.remove_task(task)
        outcome[label] = {"pairs": pairs, "saw_the_write": seen, "percent": round(100 * seen / pairs, 2),
                          "served_by": served}  # fmt: skip
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ingest-seconds", type=float, default=30)
    parser.add_argument("--ingest-per-second", type=float, default=20)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    payload: dict[str, Any] = {"benchmark": "replicas", "code": code_version(), "machine": machine(),
                               "parameters": vars(args) | {"json": str(args.json)}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="memora-replicas-") as tmp, progress() as bar:
        primary_server = EmbeddedPostgres(Path(tmp) / "primary")
        server = primary_server.ensure_running()
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("bench")))
        url = server.url("bench")
        migrate.upgrade(Settings(database_url=url))
        replica = EmbeddedReplica.copy_of(server, Path(tmp) / "replica")
        try:
            replica_url = url.replace(f":{server.port}/", f":{replica.port}/")
            payload["server"] = server_facts(url)
            settings = Settings(database_url=url, read_database_urls=[replica_url], rate_limit_per_minute=0)
            with (
                TestClient(create_app(settings), base_url="http://127.0.0.1") as replicated,
                TestClient(create_app(Settings(database_url=url)), base_url="http://127.0.0.1") as primary,
            ):
                corpus = store_corpus(primary, args.documents, bar)
                source = NFCORPUS if (NFCORPUS / "queries.jsonl").exists() else FIXTURES
                queries = make_queries(corpus, read_jsonl(source / "queries.jsonl"), random.Random(args.seed))
                queries = queries[: args.queries]
                time.sleep(1)  # the replica replays the corpus
                payload["same_results"] = same_results(replicated, primary, queries, bar)
                payload["lag"] = lag_under_ingest(
                    replicated, replica_url, args.ingest_seconds, args.ingest_per_second, bar
                )
                payload["stop"] = stop_under_searches(replicated, replica, queries, bar)
                time.sleep(1)
                payload["read_your_writes"] = read_your_writes(replicated, args.pairs, bar)
        finally:
            replica.stop()
            primary_server.stop()
    print_facts("machine", payload["machine"] | payload["code"])
    print_facts("same results", payload["same_results"])
    print_facts("lag under a steady ingest (ms from a write's response to the replica having replayed it)",
                payload["lag"]["lag_ms"] | {"writes/s": args.ingest_per_second})  # fmt: skip
    print_facts("the replica stopped under searches", payload["stop"])
    ryw = payload["read_your_writes"]
    rows = [[k, v["pairs"], v["saw_the_write"], v["percent"], v["served_by"]] for k, v in ryw.items()]
    print_table("write-then-read pairs", ["read", "pairs", "saw the write", "%", "served by"], rows)
    write_figures(args.json, payload)


if __name__ == "__main__":
    main()
